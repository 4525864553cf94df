"""Loading an exported artifact: a file the framework cannot load is an error naming the file, what was expected,
what came and the fix, raised from the framework's own (audit finding 8: torch's or TensorFlow's raw RuntimeError or
OSError reached the operator as it was)."""
from __future__ import annotations

from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from dermassist.base.errors import RepositoryError
from dermassist.base.frameworks import import_torch, load_savedmodel, load_torchscript


class _OwnError(Exception):
    """A caller's own error type (the reference pipeline's, the GPU check's)."""


def test_a_truncated_torchscript_file_is_named_with_its_size_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(RepositoryError) as caught:
        load_torchscript(import_torch(), path)
    message = str(caught.value)
    assert message.startswith(f"{path}: expected a TorchScript module")
    assert "got a file of 14 bytes that torch" in message and "RuntimeError" in message
    assert message.endswith("run `dermassist models` to export it again")
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_missing_torchscript_file_is_the_callers_error_and_a_gpu_device_is_named_in_the_fix(tmp_path: Path) -> None:
    torch = SimpleNamespace(__version__="9.9", jit=SimpleNamespace(load=_refuse(RuntimeError("CUDA error"))))
    with pytest.raises(_OwnError, match=r"loadable onto cuda:1, got nothing at that path that torch 9\.9 cannot load "
                                        r"\(RuntimeError: CUDA error\); run `dermassist models` to export it again, "
                                        r"or check that torch sees cuda:1"):
        load_torchscript(torch, tmp_path / "model.pt", "cuda:1", _OwnError)


def test_a_loadable_torchscript_file_comes_back_in_eval_mode(tmp_path: Path) -> None:
    torch = import_torch()
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(torch.nn.Dropout(0.5)), str(path))
    assert load_torchscript(torch, path).training is False


def _refuse(error: Exception):
    def load(*args: object, **kwargs: object) -> None:
        raise error

    return load


def _tf(load) -> ModuleType:
    tf = ModuleType("tensorflow")
    tf.__version__ = "2.99.0"
    tf.errors = SimpleNamespace(OpError=type("OpError", (Exception,), {}))
    tf.saved_model = SimpleNamespace(load=load)
    return tf


def test_a_damaged_savedmodel_is_named_with_what_its_folder_holds(tmp_path: Path) -> None:
    """The real TensorFlow on a saved_model.pb that is not one."""
    import tensorflow as tf

    folder = tmp_path / "model.savedmodel"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(RepositoryError) as caught:
        load_savedmodel(tf, folder)
    message = str(caught.value)
    assert message.startswith(f"{folder}: expected a TensorFlow SavedModel")
    assert "got a folder holding saved_model.pb that TensorFlow" in message and "OSError" in message
    assert message.endswith("run `dermassist models` to export it again")
    assert isinstance(caught.value.__cause__, OSError)


def test_a_savedmodel_error_of_tensorflows_own_kind_and_a_missing_signature_are_translated(tmp_path: Path) -> None:
    tf = _tf(None)
    tf.saved_model.load = _refuse(tf.errors.OpError("variables corrupt"))
    with pytest.raises(_OwnError, match=r"got nothing at that path that TensorFlow 2\.99\.0 cannot load \(OpError: "
                                        r"variables corrupt\)"):
        load_savedmodel(tf, tmp_path / "missing", _OwnError)
    tf.saved_model.load = lambda path: SimpleNamespace(signatures={"serve": None})
    with pytest.raises(RepositoryError, match=r"expected a SavedModel with a 'serving_default' signature, got "
                                              r"signatures \['serve'\]; run `dermassist models`"):
        load_savedmodel(tf, tmp_path)
    loaded = SimpleNamespace(signatures={"serving_default": "fn"})
    tf.saved_model.load = lambda path: loaded
    assert load_savedmodel(tf, tmp_path) is loaded
