"""The one place for the framework-import workarounds (standard library only; importing it loads no framework).

- TensorFlow, then anything that loads torch's ``triton`` compiler package (torchvision does, through
  ``torch._dynamo``), in one process segfaults. Torch skips that package when ``sys.modules`` says it is
  absent, and nothing here compiles with it, so every process that may import torch says so first:
  ``training`` in its package ``__init__``, the tests in ``tests/conftest.py``, the reference pipeline
  and the classifier's adapter through :func:`import_torch`.
- TensorFlow's C++ start-up lines (oneDNN, CUDA not found) go to stderr unless ``TF_CPP_MIN_LOG_LEVEL``
  is set before TensorFlow loads: :func:`quiet_tensorflow` for this process, :func:`framework_env` for
  a child's environment. An operator's own setting is kept unless a caller insists (the children of
  :mod:`training.child` report errors through their own protocol and silence TensorFlow's).
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from types import ModuleType

TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
TF_QUIET = "2"  # errors only
TF_SILENT = "3"  # nothing


def without_triton_compiler() -> None:
    """Tell torch that the ``triton`` compiler package is absent (before torch is imported)."""
    sys.modules.setdefault("triton", None)  # type: ignore[arg-type]  # None marks a module as absent


def import_torch() -> ModuleType:
    """``import torch`` without the ``triton`` compiler package; returns the module."""
    without_triton_compiler()
    import torch

    return torch


TORCH_DEVICE = re.compile(r"cpu|cuda(:\d+)?")  # the torch devices a setting may name


def is_torch_device(name: str) -> bool:
    """Whether ``name`` is ``cpu``, ``cuda`` or ``cuda:N``."""
    return TORCH_DEVICE.fullmatch(name) is not None


def missing_gpu(torch: ModuleType, name: str) -> str | None:
    """What is wrong when this host has no GPU ``name`` (``cuda`` or ``cuda:N``); None when it has it, or for the CPU."""
    if name == "cpu":
        return None
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(name.split(":")[1]) if ":" in name else 0
    if index < count:
        return None
    sees = f"{count} GPU(s), numbered from 0" if count else "no CUDA device"
    return f"device {name!r} asked for, but torch {torch.__version__} sees {sees}"


def quiet_tensorflow(environ: MutableMapping[str, str] | None = None, level: str = TF_QUIET) -> None:
    """Set TensorFlow's C++ log level in ``environ`` (this process's by default) unless it is set already."""
    (os.environ if environ is None else environ).setdefault(TF_LOG_LEVEL, level)


def framework_env(base: Mapping[str, str] | None = None, tf_level: str = TF_QUIET,
                  force: bool = False) -> dict[str, str]:
    """The environment of a child process that runs a framework: TensorFlow quiet, output unbuffered.

    ``force`` replaces an inherited TensorFlow log level instead of keeping it.
    """
    env = dict(os.environ if base is None else base)
    env["PYTHONUNBUFFERED"] = "1"
    if force:
        env[TF_LOG_LEVEL] = tf_level
    else:
        quiet_tensorflow(env, tf_level)
    return env
