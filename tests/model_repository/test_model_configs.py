"""Every Triton config (both profiles) parses with Triton's own protobuf and honours the contract."""
from __future__ import annotations

from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from dermassist.base.repository import SOURCE_REPOSITORY, read_model_config
from preprocess import contract as c

CONFIGS = sorted(SOURCE_REPOSITORY.glob("*/config.pbtxt")) + sorted(SOURCE_REPOSITORY.glob("*/configs/*.pbtxt"))
PYTHON_STEPS = (c.PREPARE_MODEL, c.CROP_MODEL)


def model_of(path: Path) -> str:
    return (path.parent if path.name == "config.pbtxt" else path.parent.parent).name


def profile_of(path: Path) -> str:
    return "gpu" if path.name == "config.pbtxt" else path.stem


def tensor_name(spec: c.TensorSpec, model: str, profile: str, index: int) -> str:
    """The name a step's config uses: libtorch wants ``<name>__<position>`` on the GPU classifier."""
    libtorch = model == c.CLASSIFIER_MODEL and profile == "gpu"
    return c.libtorch_name(spec.name, index) if libtorch else spec.name


def test_every_model_has_both_profiles() -> None:
    for model in c.ALL_MODELS:
        assert (SOURCE_REPOSITORY / model / "config.pbtxt").is_file()
        assert (SOURCE_REPOSITORY / model / "configs" / "embedded.pbtxt").is_file()
    assert len(CONFIGS) == 2 * len(c.ALL_MODELS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{model_of(p)}-{profile_of(p)}")
def test_config_matches_contract(path: Path) -> None:
    config, model, profile = read_model_config(path), model_of(path), profile_of(path)
    assert config.name == model
    assert config.max_batch_size == c.MAX_BATCH_SIZE
    inputs, outputs = c.STEP_SIGNATURES[model]
    for declared, specs in ((config.input, inputs), (config.output, outputs)):
        got = [(t.name, mc.DataType.Name(t.data_type), tuple(t.dims)) for t in declared]
        want = [(tensor_name(s, model, profile, i), s.dtype, s.dims) for i, s in enumerate(specs)]
        assert got == want


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{model_of(p)}-{profile_of(p)}")
def test_backends_and_devices_follow_the_profiles(path: Path) -> None:
    config, model, profile = read_model_config(path), model_of(path), profile_of(path)
    if model == c.ENSEMBLE_NAME:
        assert config.platform == "ensemble"
        return
    kinds = {mc.ModelInstanceGroup.Kind.Name(g.kind) for g in config.instance_group}
    assert config.HasField("dynamic_batching")
    if profile == "embedded":
        assert config.backend == "python" and kinds == {"KIND_CPU"}
    elif model == c.CLASSIFIER_MODEL:
        assert config.platform == "pytorch_libtorch" and kinds == {"KIND_GPU"}
    elif model == c.SEGMENTER_MODEL:
        assert config.backend == "python" and kinds == {"KIND_GPU"}
    else:
        assert config.backend == "python"


@pytest.mark.parametrize("profile", ["gpu", "embedded"])
def test_ensemble_wires_every_step_with_contract_tensors(profile: str) -> None:
    path = SOURCE_REPOSITORY / c.ENSEMBLE_NAME / ("config.pbtxt" if profile == "gpu" else "configs/embedded.pbtxt")
    steps = read_model_config(path).ensemble_scheduling.step
    assert [s.model_name for s in steps] == list(c.STEP_MODELS)
    produced = {c.IMAGE.name}
    for step in steps:
        inputs, outputs = c.STEP_SIGNATURES[step.model_name]
        assert dict(step.input_map) == {tensor_name(s, step.model_name, profile, i): s.name for i, s in enumerate(inputs)}
        assert dict(step.output_map) == {tensor_name(s, step.model_name, profile, i):
                                         c.ensemble_tensor(step.model_name, s.name) for i, s in enumerate(outputs)}
        assert set(step.input_map.values()) <= produced  # every input is produced by an earlier step
        produced |= set(step.output_map.values())
    assert {s.name for s in c.ENSEMBLE_OUTPUTS} <= produced
    consumed = {name for step in steps for name in step.input_map.values()}
    assert not consumed & {s.name for s in c.ENSEMBLE_OUTPUTS}  # Triton's pruning double-counts such tensors


@pytest.mark.parametrize("model, tuned", [
    (c.CROP_MODEL, "CropParams"), (c.TRIAGE_MODEL, "TriageParams"), (c.PREPARE_MODEL, "QualityLimits")])
def test_no_config_pins_a_value_the_release_tunes(model: str, tuned: str) -> None:
    """A Triton parameter overrides the version's tuned.json: the shipped configs must not set one."""
    import dataclasses

    from preprocess.crop import CropParams
    from preprocess.quality import QualityLimits
    from preprocess.triage import TriageParams

    names = {f.name for f in dataclasses.fields({"CropParams": CropParams, "TriageParams": TriageParams,
                                                 "QualityLimits": QualityLimits}[tuned])}
    for path in (SOURCE_REPOSITORY / model).rglob("*.pbtxt"):
        assert not names & set(read_model_config(path).parameters), path


@pytest.mark.parametrize("model", [c.PREPARE_MODEL, c.CROP_MODEL])
def test_opencv_steps_pin_one_thread_per_instance_in_both_profiles(model: str) -> None:
    """Several instances of a step each starting OpenCV's all-core pool would fight over the CPU."""
    for path in (SOURCE_REPOSITORY / model / "config.pbtxt", SOURCE_REPOSITORY / model / "configs" / "embedded.pbtxt"):
        assert read_model_config(path).parameters["opencv_threads"].string_value == "1", path


def test_python_steps_have_a_model_py_and_no_artifacts_are_tracked() -> None:
    for model in c.STEP_MODELS:
        assert (SOURCE_REPOSITORY / model / "1" / "model.py").is_file()
    gitignore = (SOURCE_REPOSITORY.parent / ".gitignore").read_text()
    for artifact in ("model.savedmodel", "model.pt", "labels.txt", "tuned.json", "calibration.json"):
        assert artifact in gitignore


def test_embedded_classifier_tuning_parameters_are_valid() -> None:
    from dermassist.base.repository import model_parameters

    params = model_parameters(SOURCE_REPOSITORY, c.CLASSIFIER_MODEL)
    assert int(params["intra_op_threads"]) >= 0
    assert params["omp_wait_policy"] in {"ACTIVE", "PASSIVE"}
    assert params["optimize_for_cpu"] in {"true", "false"}
    assert model_parameters(SOURCE_REPOSITORY, c.CLASSIFIER_MODEL, "gpu") == {}  # no configs/gpu.pbtxt: config.pbtxt


def test_model_parameters_names_an_unreadable_config(tmp_path: Path) -> None:
    from dermassist.base.errors import RepositoryError
    from dermassist.base.repository import model_parameters

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.pbtxt").write_text("name: [unclosed")
    with pytest.raises(RepositoryError, match=r"broken/config\.pbtxt"):
        model_parameters(tmp_path, "broken")
    with pytest.raises(RepositoryError, match=r"missing/config\.pbtxt"):
        model_parameters(tmp_path, "missing")
