"""The GPU profile's classifier check: comparisons on answers worked out by hand, and the whole check on CPU."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dermassist.cli import main
from dermassist.gpu_parity import (
    GpuCheckConfig,
    GpuCheckError,
    Outputs,
    agrees,
    compare,
    gpu_check,
    load_crops,
    write_report,
)
from preprocess.contract import CLASS_CODES, CLS_SIZE


def _probs(**by_class: float) -> np.ndarray:
    row = np.zeros(len(CLASS_CODES), np.float32)
    for code, p in by_class.items():
        row[CLASS_CODES.index(code)] = p
    return row


def _outputs(rows: list[np.ndarray], ood: list[float], cam_value: int = 0) -> Outputs:
    return Outputs(np.stack(rows), np.array(ood, np.float32)[:, None], np.full((len(rows), 4, 4), cam_value, np.uint8))


def test_compare_reports_the_largest_differences_and_the_decisions_that_changed() -> None:
    # crop 0: NV 0.7 / MEL 0.3 (REFER score 0.3) -> NV 0.65 / MEL 0.35 (0.35): same top class, REFER crosses 0.32
    # crop 1: BCC 0.6 / NV 0.4 -> BCC 0.59 / NV 0.41: nothing changes
    reference = _outputs([_probs(NV=0.7, MEL=0.3), _probs(BCC=0.6, NV=0.4)], [0.5, 4.0])
    got = _outputs([_probs(NV=0.65, MEL=0.35), _probs(BCC=0.59, NV=0.41)], [0.6, 4.2])
    got.cam[1, 0, 0] = 3  # one pixel of 32 off by 3 grey levels, one by 2 (within tolerance)
    got.cam[1, 0, 1] = 2
    figures = compare(reference, got, refer_threshold=0.32)
    assert figures["crops"] == 2
    assert figures["max_abs_probability"] == pytest.approx(0.05, abs=1e-6)
    assert figures["same_top_class"] == 1.0
    assert figures["same_refer"] == 0.5  # crop 0 went from ROUTINE (0.30) to REFER (0.35)
    # OOD differences relative to max(|reference|, 1): 0.1 / 1 = 0.1 and 0.2 / 4 = 0.05
    assert figures["max_rel_ood"] == pytest.approx(0.1, abs=1e-6)
    assert figures["max_cam_levels"] == 3
    assert figures["cam_share_over_tolerance"] == pytest.approx(1 / 32)
    assert not agrees(figures)


def test_a_top_class_that_flips_is_counted() -> None:
    reference = _outputs([_probs(NV=0.51, BKL=0.49)], [1.0])
    got = _outputs([_probs(NV=0.49, BKL=0.51)], [1.0])
    assert compare(reference, got, 0.5)["same_top_class"] == 0.0


def test_agrees_holds_at_the_tolerances_and_fails_just_past_them() -> None:
    at = {"max_abs_probability": 0.005, "same_top_class": 1.0, "same_refer": 1.0, "max_rel_ood": 0.005,
          "cam_share_over_tolerance": 0.01}
    assert agrees(at)
    for key, past in (("max_abs_probability", 0.0051), ("same_top_class", 0.99), ("same_refer", 0.99),
                      ("max_rel_ood", 0.0051), ("cam_share_over_tolerance", 0.0101)):
        assert not agrees({**at, key: past}), key


def test_compare_refuses_answers_of_different_shapes() -> None:
    one = _outputs([_probs(NV=1.0)], [1.0])
    two = _outputs([_probs(NV=1.0), _probs(NV=1.0)], [1.0, 1.0])
    with pytest.raises(GpuCheckError, match=r"cannot compare \(1, 8\) probabilities with \(2, 8\)"):
        compare(one, two, 0.5)


def test_load_crops_names_what_it_expected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, crops=np.zeros((2, CLS_SIZE, CLS_SIZE, 3), np.float32))
    with pytest.raises(GpuCheckError, match=r"uint8 \(N, 224, 224, 3\), got float32"):
        load_crops(bad)
    np.savez(bad, images=np.zeros((2, 3), np.uint8))
    with pytest.raises(GpuCheckError, match="no 'crops' array"):
        load_crops(bad)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(GpuCheckError, match="could not be read"):
        load_crops(tmp_path / "text.npz")
    empty = tmp_path / "empty.npz"
    np.savez(empty, crops=np.zeros((0, CLS_SIZE, CLS_SIZE, 3), np.uint8))
    with pytest.raises(GpuCheckError, match="holds no crops"):
        load_crops(empty)


def test_config_refuses_a_missing_file_and_an_unknown_device(tmp_path: Path) -> None:
    with pytest.raises(GpuCheckError, match="is not a file"):
        GpuCheckConfig(crops=tmp_path / "none.npz")
    crops = tmp_path / "c.npz"
    crops.write_bytes(b"")
    with pytest.raises(GpuCheckError, match="cpu, cuda or cuda:N, got 'tpu'"):
        GpuCheckConfig(crops=crops, device="tpu")
    with pytest.raises(GpuCheckError, match="at least 1, got 0"):
        GpuCheckConfig(crops=crops, repeats=0)
    assert GpuCheckConfig.resolve({"crops": crops}, environ={"DERMASSIST_GPU_CHECK_DEVICE": "cuda:1"}).device == "cuda:1"


@pytest.fixture(scope="module")
def crops_file(tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six crops and the tiny classifier's CPU answers to them, as the served outputs would be saved: each crop alone
    through the TorchScript, not through the check's own ``run_classifier`` (whose batching it must not share)."""
    from dermassist.base.frameworks import import_torch
    from dermassist.base.repository import classifier_artifact
    from preprocess.crop import normalise

    torch = import_torch()
    crops = np.random.default_rng(3).integers(0, 256, (6, CLS_SIZE, CLS_SIZE, 3), dtype=np.uint8)
    model = torch.jit.load(str(classifier_artifact(tiny_repository)), map_location="cpu").eval()
    with torch.no_grad():
        answers = [[t.numpy() for t in model(torch.from_numpy(normalise(crop[None])))] for crop in crops]
    probabilities, ood_score, cam = (np.concatenate([a[i] for a in answers]) for i in range(3))
    path = tmp_path_factory.mktemp("gpu_check") / "crops.npz"
    np.savez_compressed(path, crops=crops, probabilities=probabilities, ood_score=ood_score, cam=cam)
    return path


def test_the_whole_check_on_cpu_finds_no_difference_and_times_each_batch_size(tiny_repository: Path,
                                                                              crops_file: Path, tmp_path: Path) -> None:
    result = gpu_check(GpuCheckConfig(crops=crops_file, repository=tiny_repository, device="cpu", repeats=2))
    assert result["agrees"] and set(result["settings"]) == {"fp32"}
    figures = result["settings"]["fp32"]
    assert figures["crops"] == 6 and figures["max_abs_probability"] == 0.0 and figures["max_cam_levels"] == 0
    # the served answers came one crop at a time, the check's in batches of 4: float rounding, no more
    assert result["cpu_vs_served"]["same_refer"] == 1.0 and result["cpu_vs_served"]["max_abs_probability"] < 1e-6
    assert [row["batch"] for row in figures["timing"]] == [1, 8, 32]
    assert all(row["ms"] > 0 and row["images_per_s"] > 0 for row in figures["timing"])
    js, md = write_report(result, tmp_path)
    assert json.loads(js.read_text())["agrees"] is True
    assert "| cpu fp32 | 0.00e+00 | 1.000 | 1.000 |" in md.read_text()


def test_the_whole_check_finds_served_answers_that_differ(tiny_repository: Path, crops_file: Path,
                                                           tmp_path: Path) -> None:
    """The same check on answers the server is said to have given that are not the model's: one crop's probabilities
    moved by 0.01 (over the 0.005 tolerance) must be found and fail the check."""
    arrays = dict(np.load(crops_file))
    moved = arrays["probabilities"].copy()
    moved[2, moved[2].argmax()] -= 0.01
    moved[2, moved[2].argmin()] += 0.01
    changed = tmp_path / "moved.npz"
    np.savez_compressed(changed, **{**arrays, "probabilities": moved})
    result = gpu_check(GpuCheckConfig(crops=changed, repository=tiny_repository, device="cpu", repeats=1))
    assert result["agrees"] is False
    assert abs(result["cpu_vs_served"]["max_abs_probability"] - 0.01) < 1e-6


def test_the_command_says_clearly_when_there_is_no_gpu(tiny_repository: Path, crops_file: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    from dermassist.base.frameworks import import_torch

    monkeypatch.setattr(import_torch().cuda, "is_available", lambda: False)
    code = main(["gpu-check", "--crops", str(crops_file), "--repository", str(tiny_repository), "--device", "cuda"])
    assert code == 2
    assert "sees no CUDA device" in caplog.text and "--device cpu" in caplog.text


def test_the_command_reports_a_repository_without_a_classifier(tmp_path: Path, crops_file: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    code = main(["gpu-check", "--crops", str(crops_file), "--repository", str(tmp_path), "--device", "cpu"])
    assert code == 2 and "run `dermassist models` first" in caplog.text


def test_the_threshold_is_the_gpu_profiles_unless_one_is_given(tiny_repository: Path, crops_file: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from dermassist.base.repository import step_settings
    from dermassist.gpu_parity import profile_threshold
    from preprocess.contract import TRIAGE_MODEL
    from preprocess.triage import TriageParams

    assert profile_threshold(tiny_repository) == step_settings(tiny_repository, TRIAGE_MODEL, TriageParams,
                                                               "gpu").refer_threshold
    given = gpu_check(GpuCheckConfig(crops=crops_file, repository=tiny_repository, device="cpu", repeats=1,
                                     refer_threshold=0.25))
    assert given["refer_threshold"] == 0.25
    with pytest.raises(GpuCheckError, match="must lie in"):
        GpuCheckConfig(crops=crops_file, refer_threshold=1.0)
    monkeypatch.setitem(sys.modules, "tritonclient.grpc", None)  # a GPU host without tritonclient
    with pytest.raises(GpuCheckError, match="needs tritonclient.*pass --refer-threshold"):
        profile_threshold(tiny_repository)


def test_config_takes_crops_or_a_running_server_with_images(tmp_path: Path) -> None:
    crops = tmp_path / "c.npz"
    crops.write_bytes(b"")
    with pytest.raises(GpuCheckError, match="not neither"):
        GpuCheckConfig()
    with pytest.raises(GpuCheckError, match="not both"):
        GpuCheckConfig(crops=crops, url="localhost:8001", images=tmp_path)
    with pytest.raises(GpuCheckError, match="--url needs --images"):
        GpuCheckConfig(url="localhost:8001")
    with pytest.raises(GpuCheckError, match="goes with --url|need --url"):
        GpuCheckConfig(crops=crops, images=tmp_path)
    with pytest.raises(GpuCheckError, match="goes with --url|need --url"):
        GpuCheckConfig(crops=crops, ssl=True)
    assert GpuCheckConfig(url="localhost:8001", images=tmp_path).crops is None


def test_a_crops_file_with_wrong_or_partial_answers_is_refused_before_any_model_runs(tmp_path: Path) -> None:
    crops = np.zeros((2, CLS_SIZE, CLS_SIZE, 3), np.uint8)
    probs = np.full((2, len(CLASS_CODES)), 1 / len(CLASS_CODES), np.float32)
    cam = np.zeros((2, CLS_SIZE, CLS_SIZE), np.uint8)
    path = tmp_path / "c.npz"
    np.save(tmp_path / "one.npy", crops)
    with pytest.raises(GpuCheckError, match="holds one array, not named arrays"):
        load_crops(tmp_path / "one.npy")
    np.savez(path, crops=crops, probabilities=probs)
    with pytest.raises(GpuCheckError, match="holds probabilities but not ood_score, cam"):
        load_crops(path)
    np.savez(path, crops=crops, probabilities=probs, ood_score=np.zeros((2, 1), np.float32), cam=cam[:, :10, :10])
    with pytest.raises(GpuCheckError, match=r"cam must be \(2, 224, 224\) for its 2 crops, got \(2, 10, 10\)"):
        load_crops(path)
    np.savez(path, crops=crops, probabilities=probs, ood_score=np.zeros((3, 1), np.float32), cam=cam)
    with pytest.raises(GpuCheckError, match=r"ood_score must be \(2, 1\)"):
        load_crops(path)
    np.savez(path, crops=crops, probabilities=probs, ood_score=np.array([0.0, 5.0], np.float32), cam=cam)
    _, answers = load_crops(path)  # a flat OOD score is the same answer, one per crop
    assert answers is not None and answers.ood_score.tolist() == [[0.0], [5.0]]


def test_config_refuses_an_out_that_is_a_file_and_a_malformed_device(tmp_path: Path) -> None:
    crops = tmp_path / "c.npz"
    crops.write_bytes(b"")
    with pytest.raises(GpuCheckError, match="is a file; give the folder"):
        GpuCheckConfig(crops=crops, out=crops)
    for device in ("cudax", "cuda:", "cuda:1x"):
        with pytest.raises(GpuCheckError, match="cpu, cuda or cuda:N"):
            GpuCheckConfig(crops=crops, device=device)


def test_saved_answers_within_tolerance_that_cross_the_refer_threshold_are_a_changed_decision(
        tiny_repository: Path, crops_file: Path, tmp_path: Path) -> None:
    """Half a point moved onto the referral classes of one crop, with the threshold between its two scores: every
    probability agrees within the tolerance, REFER does not."""
    from preprocess.triage import REFER_INDEX

    arrays = dict(np.load(crops_file))
    probabilities = arrays["probabilities"].copy()
    row = probabilities[0]
    refer, other = REFER_INDEX[0], next(i for i in np.argsort(-row) if i not in REFER_INDEX)
    assert row[other] > 0.004
    row[refer] += 0.004
    row[other] -= 0.004
    score = float(arrays["probabilities"][0, list(REFER_INDEX)].sum())  # the classifier's own, which the CPU gives
    moved = tmp_path / "moved.npz"
    np.savez_compressed(moved, **{**arrays, "probabilities": probabilities})
    result = gpu_check(GpuCheckConfig(crops=moved, repository=tiny_repository, device="cpu", repeats=1,
                                      refer_threshold=score + 0.002))
    figures = result["cpu_vs_served"]
    assert figures["max_abs_probability"] == pytest.approx(0.004, abs=1e-6)
    assert figures["same_refer"] == pytest.approx(5 / 6)
    assert not figures["agrees"] and not result["agrees"]


def test_a_classifier_torch_cannot_load_is_a_check_error_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    """Audit finding 8: torch's raw RuntimeError reached the command line for a truncated model.pt."""
    from dermassist.base.repository import classifier_artifact

    crops = tmp_path / "c.npz"
    crops.write_bytes(b"")
    path = classifier_artifact(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a zip archive")
    with pytest.raises(GpuCheckError, match=rf"^{path}: expected a TorchScript module .* loadable onto cpu, got a file "
                                            r"of 17 bytes that torch .* cannot load \(RuntimeError: .*\); run "
                                            r"`dermassist models` to export it again$") as caught:
        gpu_check(GpuCheckConfig(crops=crops, repository=tmp_path, device="cpu", refer_threshold=0.5))
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_the_served_answers_are_read_in_the_contracts_class_order_not_the_clients_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit finding 19: server-side code read the class list from the thin client's copy."""
    import sys
    from types import SimpleNamespace

    from dermassist.evaluation import service
    from dermassist.gpu_parity import served_answers

    (tmp_path / "a.jpg").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "dermassist_client.classes", None)  # importing it now fails
    probabilities = {code: float(i) for i, code in enumerate(CLASS_CODES)}
    result = SimpleNamespace(probabilities=probabilities, ood_score=0.5, crop=np.zeros((CLS_SIZE, CLS_SIZE, 3), np.uint8),
                             cam=np.zeros((CLS_SIZE, CLS_SIZE), np.uint8))
    monkeypatch.setattr(service, "analyse", lambda *args, **kwargs: SimpleNamespace(refused=[], results=[result]))
    crops, outputs = served_answers(GpuCheckConfig(url="localhost:8001", images=tmp_path))
    assert crops.shape == (1, CLS_SIZE, CLS_SIZE, 3)
    assert outputs.probabilities.tolist() == [list(range(len(CLASS_CODES)))]
