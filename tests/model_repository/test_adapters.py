"""The Python-backend adapters' own lines, run without Triton: a stand-in ``triton_python_backend_utils`` feeds
them requests as numpy arrays."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from dermassist.base.paths import PROJECT_ROOT
from preprocess.contract import ORIGINAL_SIZE, SCALE, SEG_PROB, SEG_SIZE, WORK_IMAGE, WORK_SIZE
from preprocess.errors import PreprocessError, StepSettingsError


@pytest.fixture
def lesion_crop_adapter(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``model_repository/lesion_crop/1/model.py`` imported with a stand-in for Triton's utilities."""
    stand_in = ModuleType("triton_python_backend_utils")
    stand_in.get_input_tensor_by_name = lambda request, name: SimpleNamespace(as_numpy=lambda: request[name])
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", stand_in)
    spec = importlib.util.spec_from_file_location("lesion_crop_model", PROJECT_ROOT / "model_repository" /
                                                  "lesion_crop" / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lesion_crop_takes_each_work_image_out_of_its_padding_by_its_own_height_and_width(lesion_crop_adapter) -> None:
    """The ensemble pads a batch's work images to the largest: WORK_SIZE is (height, width) of each."""
    rng = np.random.default_rng(0)
    padded = np.zeros((2, 300, 700, 3), np.uint8)
    first, second = rng.integers(1, 256, (225, 600, 3), np.uint8), rng.integers(1, 256, (300, 400, 3), np.uint8)
    padded[0, :225, :600], padded[1, :300, :400] = first, second
    request = {SEG_PROB.name: np.zeros((2, SEG_SIZE, SEG_SIZE, 1), np.float32), WORK_IMAGE.name: padded,
               WORK_SIZE.name: np.array([[225, 600], [300, 400]], np.int32), SCALE.name: np.ones((2, 1), np.float32),
               ORIGINAL_SIZE.name: np.array([[225, 600], [300, 400]], np.int32)}
    rows = lesion_crop_adapter._rows(request)
    assert np.array_equal(rows["work"][0], first) and np.array_equal(rows["work"][1], second)
    assert rows["prob"].shape == (2, SEG_SIZE, SEG_SIZE) and rows["scale"].tolist() == [1.0, 1.0]
    too_big = {**request, WORK_SIZE.name: np.array([[225, 701], [300, 400]], np.int32)}
    refused = lesion_crop_adapter._rows(too_big)
    assert isinstance(refused, PreprocessError) and "exceeds WORK_IMAGE" in str(refused)


def test_lesion_crop_unpads_with_preprocess_not_its_own_copy(lesion_crop_adapter) -> None:
    """Audit finding 10: the check and the un-padding live once, in ``preprocess.prepare`` beside the padding."""
    from preprocess import prepare

    assert lesion_crop_adapter.unpad_work_images is prepare.unpad_work_images
    request = {SEG_PROB.name: np.zeros((2, SEG_SIZE, SEG_SIZE, 1), np.float32),
               WORK_IMAGE.name: np.zeros((2, 40, 60, 3), np.uint8), WORK_SIZE.name: np.array([[40, 60]], np.int32),
               SCALE.name: np.ones((2, 1), np.float32), ORIGINAL_SIZE.name: np.array([[40, 60]] * 2, np.int32)}
    refused = lesion_crop_adapter._rows(request)  # rows that differ are refused by input_rows, naming the tensors
    assert isinstance(refused, PreprocessError) and "'WORK_IMAGE': 2, 'WORK_SIZE': 1" in str(refused)


def test_lesion_crop_refuses_an_original_size_that_is_not_one_positive_pair_per_row(lesion_crop_adapter) -> None:
    from preprocess.batching import batch_execute

    request = {SEG_PROB.name: np.zeros((1, SEG_SIZE, SEG_SIZE, 1), np.float32),
               WORK_IMAGE.name: np.full((1, 40, 60, 3), 128, np.uint8), WORK_SIZE.name: np.array([[40, 60]], np.int32),
               SCALE.name: np.ones((1, 1), np.float32), ORIGINAL_SIZE.name: np.array([[40, 60]], np.int32)}
    assert lesion_crop_adapter._rows(request)["original_sizes"].tolist() == [[40, 60]]
    two_rows = {**request, ORIGINAL_SIZE.name: np.array([[40, 60], [40, 60]], np.int32)}

    def compute(**rows: object) -> None:
        raise AssertionError("a request whose inputs differ in rows reached the crop")

    (refused,) = batch_execute([lesion_crop_adapter._rows(two_rows)], compute)
    assert isinstance(refused, PreprocessError) and "every input must hold one row per image" in str(refused)
    assert "'ORIGINAL_SIZE': 2" in str(refused)  # the tensor's name, not the batch function's argument


def _adapter(monkeypatch: pytest.MonkeyPatch, model: str) -> ModuleType:
    """``model_repository/<model>/1/model.py`` imported with a stand-in for Triton's utilities."""
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", ModuleType("triton_python_backend_utils"))
    spec = importlib.util.spec_from_file_location(f"{model}_model", PROJECT_ROOT / "model_repository" / model / "1" /
                                                  "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _initialize_args(tmp_path, parameters: dict[str, str]) -> dict[str, str]:
    config = {"parameters": {k: {"string_value": v} for k, v in parameters.items()}}
    return {"model_config": json.dumps(config), "model_repository": str(tmp_path), "model_version": "1"}


class _FakeTorch:
    """What the classifier adapter calls of torch, recorded (``load_error``: what its ``jit.load`` raises)."""

    __version__ = "9.9"

    def __init__(self, load_error: Exception | None = None) -> None:
        self.calls: list[tuple] = []
        module = SimpleNamespace(eval=lambda: "module")

        def load(path: str, map_location: str) -> SimpleNamespace:
            self.calls.append(("load", path))
            if load_error is not None:
                raise load_error
            return module

        self.jit = SimpleNamespace(load=load,
                                   freeze=lambda m: self.calls.append(("freeze", m)) or m,
                                   optimize_for_inference=lambda m: self.calls.append(("optimize", m)) or m)

    def set_num_threads(self, n: int) -> None:
        self.calls.append(("threads", n))


def test_lesion_classifier_reads_its_switches_typed_and_loads_the_repositorys_file_name(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist.base import repository

    adapter = _adapter(monkeypatch, "lesion_classifier")
    torch = _FakeTorch()
    monkeypatch.setattr(adapter, "import_torch", lambda: torch)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    model = adapter.TritonPythonModel()
    model.initialize(_initialize_args(tmp_path, {"omp_wait_policy": "passive", "optimize_for_cpu": "TRUE",
                                                 "intra_op_threads": "2"}))
    assert adapter.TORCHSCRIPT_FILENAME is repository.TORCHSCRIPT_FILENAME
    assert torch.calls == [("threads", 2), ("load", str(tmp_path / "1" / repository.TORCHSCRIPT_FILENAME)),
                           ("freeze", "module"), ("optimize", "module")]
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


@pytest.mark.parametrize(("parameters", "said"), [({"optimize_for_cpu": "ture"}, "optimize_for_cpu must be a bool"),
                                                  ({"omp_wait_policy": "spin"}, "omp_wait_policy must be one of")])
def test_lesion_classifier_refuses_a_misspelt_switch_before_it_loads_anything(
        tmp_path, monkeypatch: pytest.MonkeyPatch, parameters: dict[str, str], said: str) -> None:
    """Before, "ture" served the classifier unoptimised in silence, and any policy went into OpenMP's environment."""
    adapter = _adapter(monkeypatch, "lesion_classifier")
    torch = _FakeTorch()
    monkeypatch.setattr(adapter, "import_torch", lambda: torch)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with pytest.raises(PreprocessError, match=said):
        adapter.TritonPythonModel().initialize(_initialize_args(tmp_path, parameters))
    assert torch.calls == [] and "OMP_WAIT_POLICY" not in os.environ


def test_lesion_classifier_reads_its_cpu_settings_as_the_reference_does(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit finding 5: the names and defaults of its switches are written once, in ``preprocess.params``."""
    from preprocess import params

    adapter = _adapter(monkeypatch, "lesion_classifier")
    assert adapter.classifier_cpu_settings is params.classifier_cpu_settings
    torch = _FakeTorch()
    monkeypatch.setattr(adapter, "import_torch", lambda: torch)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    adapter.TritonPythonModel().initialize(_initialize_args(tmp_path, {}))  # every switch at its one default
    assert params.ClassifierCpuSettings() == params.ClassifierCpuSettings(False, "", 0)
    assert torch.calls == [("load", str(tmp_path / "1" / "model.pt"))] and "OMP_WAIT_POLICY" not in os.environ


def test_lesion_classifier_names_a_file_torch_cannot_load_and_the_fix(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit finding 8: torch's raw RuntimeError was what Triton logged for a truncated model.pt."""
    from dermassist.base.errors import RepositoryError

    adapter = _adapter(monkeypatch, "lesion_classifier")
    cause = RuntimeError("PytorchStreamReader failed reading zip archive")
    monkeypatch.setattr(adapter, "import_torch", lambda: _FakeTorch(load_error=cause))
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "model.pt").write_bytes(b"PK")
    with pytest.raises(RepositoryError) as caught:
        adapter.TritonPythonModel().initialize(_initialize_args(tmp_path, {}))
    assert str(caught.value) == (
        f"{tmp_path / '1' / 'model.pt'}: expected a TorchScript module (the classifier `dermassist models` exports) "
        "loadable onto cpu, got a file of 2 bytes that torch 9.9 cannot load (RuntimeError: PytorchStreamReader "
        "failed reading zip archive); run `dermassist models` to export it again")
    assert caught.value.__cause__ is cause


def _fake_tensorflow(monkeypatch: pytest.MonkeyPatch, loaded: list[str], gpus: list[str],
                     load_error: Exception | None = None) -> None:
    """A stand-in ``tensorflow`` that records the SavedModel paths it loads (raising ``load_error`` when given) and
    sees ``gpus``."""
    signature = SimpleNamespace(structured_input_signature=((), {"x": None}))
    config = SimpleNamespace(list_physical_devices=lambda kind: gpus,
                             set_visible_devices=lambda device, kind: None,
                             experimental=SimpleNamespace(set_memory_growth=lambda device, on: None),
                             threading=SimpleNamespace(set_intra_op_parallelism_threads=lambda n: None,
                                                       set_inter_op_parallelism_threads=lambda n: None))
    tf = ModuleType("tensorflow")
    tf.__version__ = "2.99.0"
    tf.config = config
    tf.test = SimpleNamespace(is_built_with_cuda=lambda: False)
    tf.errors = SimpleNamespace(OpError=type("OpError", (Exception,), {}))

    def load(path: str) -> SimpleNamespace:
        loaded.append(path)
        if load_error is not None:
            raise load_error
        return SimpleNamespace(signatures={"serving_default": signature})

    tf.saved_model = SimpleNamespace(load=load)
    monkeypatch.setitem(sys.modules, "tensorflow", tf)


def test_lesion_segmenter_loads_the_repositorys_savedmodel_name(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist.base import repository

    loaded: list[str] = []
    _fake_tensorflow(monkeypatch, loaded, gpus=[])
    adapter = _adapter(monkeypatch, "lesion_segmenter")
    adapter.TritonPythonModel().initialize(_initialize_args(tmp_path, {}))
    assert adapter.SAVEDMODEL_DIRNAME is repository.SAVEDMODEL_DIRNAME
    assert loaded == [str(tmp_path / "1" / repository.SAVEDMODEL_DIRNAME)]


def test_lesion_segmenter_on_a_gpu_instance_refuses_to_load_when_tensorflow_sees_no_gpu(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator's audit, finding 10: a KIND_GPU instance whose TensorFlow saw no GPU ran on the CPU in silence."""
    loaded: list[str] = []
    _fake_tensorflow(monkeypatch, loaded, gpus=[])
    adapter = _adapter(monkeypatch, "lesion_segmenter")
    gpu_instance = {**_initialize_args(tmp_path, {}), "model_instance_kind": "GPU", "model_instance_device_id": "0"}
    with pytest.raises(StepSettingsError, match=r"KIND_GPU \(device 0\) but TensorFlow 2.99.0 sees no GPU"):
        adapter.TritonPythonModel().initialize(gpu_instance)
    assert loaded == []
    _fake_tensorflow(monkeypatch, loaded, gpus=["GPU:0"])
    adapter.TritonPythonModel().initialize(gpu_instance)  # with a GPU it loads
    assert len(loaded) == 1


def test_lesion_segmenter_names_a_gpu_past_the_ones_tensorflow_sees(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit finding 8: device 1 of one visible GPU was a bare IndexError in the model's load failure."""
    loaded: list[str] = []
    _fake_tensorflow(monkeypatch, loaded, gpus=["GPU:0"])
    adapter = _adapter(monkeypatch, "lesion_segmenter")
    second = {**_initialize_args(tmp_path, {}), "model_instance_kind": "GPU", "model_instance_device_id": "1"}
    with pytest.raises(StepSettingsError, match=r"lesion_segmenter: its instance is KIND_GPU on device 1 but TensorFlow "
                                              r"2\.99\.0 sees 1 GPU\(s\), numbered from 0; give the instance group a "
                                              r"device TensorFlow sees .*CUDA_VISIBLE_DEVICES"):
        adapter.TritonPythonModel().initialize(second)
    assert loaded == []


def test_lesion_segmenter_names_a_savedmodel_tensorflow_cannot_load_and_the_fix(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit finding 8: TensorFlow's raw OSError was what Triton logged for a damaged SavedModel."""
    from dermassist.base.errors import RepositoryError

    cause = OSError("Cannot parse file b'saved_model.pb'")
    _fake_tensorflow(monkeypatch, [], gpus=[], load_error=cause)
    adapter = _adapter(monkeypatch, "lesion_segmenter")
    with pytest.raises(RepositoryError, match=r"model\.savedmodel: expected a TensorFlow SavedModel \(the segmenter "
                                              r"`dermassist models` exports\), got nothing at that path that "
                                              r"TensorFlow 2\.99\.0 cannot load \(OSError: Cannot parse file "
                                              r"b'saved_model\.pb'\); run `dermassist models` to export it again") as caught:
        adapter.TritonPythonModel().initialize(_initialize_args(tmp_path, {}))
    assert caught.value.__cause__ is cause


def test_triage_serves_the_ood_score_over_the_limit_its_parameter_sets(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A site's ood_limit 2.0: the adapter publishes the classifier's score over it (what NOTE and ASSESSABLE
    judge), not the classifier's own, so OOD_SCORE >= 1 keeps meaning out of distribution."""
    from preprocess.contract import OOD_SCORE

    adapter = _adapter(monkeypatch, "triage")
    model = adapter.TritonPythonModel()
    model.initialize(_initialize_args(tmp_path, {"ood_limit": "2.0", "refer_threshold": "0.5"}))
    probabilities = np.zeros((2, 8), np.float32)
    probabilities[:, 4] = 1.0  # NV
    out = model._compute(probabilities, np.array([[1.5], [3.0]], np.float32),
                         np.tile(np.array([2.0, 1.5, 1.5, 12.0, 2.9], np.float32), (2, 1)),
                         np.full((2, 1), 0.1, np.float32), np.zeros((2, 1), np.float32))
    assert out[OOD_SCORE.name][:, 0].tolist() == [0.75, 1.5]
    assert out["ASSESSABLE"][:, 0].tolist() == [True, False]
