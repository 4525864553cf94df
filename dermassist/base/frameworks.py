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
- Loading an exported artifact (:func:`load_torchscript`, :func:`load_savedmodel`) turns the framework's own
  error (a truncated ``model.pt``, a damaged SavedModel) into one that names the file, what was expected, what
  came and the fix; the caller passes the framework module it imported, so this module still loads none.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import RepositoryError

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


SAVEDMODEL_SIGNATURE = "serving_default"  # the endpoint Keras's ``model.export`` writes and the server calls
EXPORT_AGAIN = "run `dermassist models` to export it again"


def _what_came(path: Path) -> str:
    """What lies at ``path``, in a few words: nothing, a folder, or a file of its size."""
    if not path.exists():
        return "nothing at that path"
    if path.is_dir():
        return f"a folder holding {', '.join(sorted(p.name for p in path.iterdir())[:6]) or 'nothing'}"
    return f"a file of {path.stat().st_size} bytes"


def load_torchscript(torch: ModuleType, path: str | Path, map_location: str = "cpu",
                     error: type[Exception] = RepositoryError) -> Any:
    """``torch.jit.load(path, map_location).eval()``; a file torch cannot load is ``error`` naming the file, what
    came and the fix (export it again, or, on a GPU, check that torch sees the device)."""
    path = Path(path)
    try:
        return torch.jit.load(str(path), map_location=map_location).eval()
    except (RuntimeError, OSError, ValueError) as e:
        fix = EXPORT_AGAIN if map_location == "cpu" else f"{EXPORT_AGAIN}, or check that torch sees {map_location}"
        raise error(f"{path}: expected a TorchScript module (the classifier `dermassist models` exports) loadable onto "
                    f"{map_location}, got {_what_came(path)} that torch {getattr(torch, '__version__', '?')} cannot "
                    f"load ({type(e).__name__}: {e}); {fix}") from e


def load_savedmodel(tf: ModuleType, path: str | Path, error: type[Exception] = RepositoryError) -> Any:
    """``tf.saved_model.load(path)`` with its ``serving_default`` signature; a folder TensorFlow cannot load, or
    one without that signature, is ``error`` naming the folder, what came and the fix (export it again)."""
    path = Path(path)
    try:
        loaded = tf.saved_model.load(str(path))
    except (RuntimeError, OSError, ValueError, tf.errors.OpError) as e:
        raise error(f"{path}: expected a TensorFlow SavedModel (the segmenter `dermassist models` exports), got "
                    f"{_what_came(path)} that TensorFlow {getattr(tf, '__version__', '?')} cannot load "
                    f"({type(e).__name__}: {e}); {EXPORT_AGAIN}") from e
    signatures = getattr(loaded, "signatures", {})
    if SAVEDMODEL_SIGNATURE not in signatures:
        raise error(f"{path}: expected a SavedModel with a {SAVEDMODEL_SIGNATURE!r} signature, got signatures "
                    f"{sorted(signatures) or 'none'}; {EXPORT_AGAIN}")
    return loaded


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


def place_tensorflow(tf: ModuleType, model: str, args: Mapping[str, Any], intra_op_threads: int,
                     inter_op_threads: int) -> None:
    """Put a Python step's TensorFlow where its Triton instance is: on its GPU for a KIND_GPU instance (that GPU
    alone, memory growing as needed), with the thread pools its config parameters set. A GPU TensorFlow does not see
    is a StepSettingsError naming ``model`` and the fix: the step would otherwise run on the CPU at CPU speed, in
    silence, or fail as a bare IndexError."""
    from preprocess.errors import StepSettingsError

    gpus = tf.config.list_physical_devices("GPU")
    if args.get("model_instance_kind") == "GPU":
        if not gpus:
            raise StepSettingsError(
                f"{model}: its instance is KIND_GPU (device {args.get('model_instance_device_id')}) but "
                f"TensorFlow {tf.__version__} sees no GPU (built with CUDA: {tf.test.is_built_with_cuda()}); "
                "install a CUDA build of TensorFlow that matches the host's driver (the GPU image's "
                "tensorflow[and-cuda]), or serve the embedded profile on a host without a GPU")
        index = int(args["model_instance_device_id"])
        if index >= len(gpus):
            raise StepSettingsError(
                f"{model}: its instance is KIND_GPU on device {index} but TensorFlow {tf.__version__} "
                f"sees {len(gpus)} GPU(s), numbered from 0; give the instance group a device TensorFlow sees "
                "(`gpus: [...]` in config.pbtxt), or make that GPU visible (CUDA_VISIBLE_DEVICES)")
        tf.config.set_visible_devices(gpus[index], "GPU")
        tf.config.experimental.set_memory_growth(gpus[index], True)
    tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)


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
