"""Exports: parity of exported vs eager models, architecture checks, and the export command."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dermassist.base.repository import classifier_artifact, labels_file, segmenter_artifact
from preprocess.contract import CLASS_CODES
from tests.conftest import PROJECT_ROOT
from training.errors import ExportError
from training.export.parity import check_parity


def _run(code: str) -> subprocess.CompletedProcess:
    """Run a snippet in a fresh process (TensorFlow and torch never share one)."""
    return subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)


def test_check_parity_accepts_equal_and_refuses_different_outputs() -> None:
    a = np.random.default_rng(0).random((2, 8), dtype=np.float32)
    assert check_parity("x", a, a.copy()) == 0.0
    with pytest.raises(ExportError, match="differs from eager by"):
        check_parity("x", a, a + 1e-3)
    with pytest.raises(ExportError, match="shape"):
        check_parity("x", a, a[:1])
    broken = a.copy()
    broken[1, 3] = np.nan  # NaN weights: the eager model is what is broken, not the export
    with pytest.raises(ExportError, match="own .eager. output holds NaN or infinite values, so its weights do"):
        check_parity("x", broken, broken.copy())


SEGMENTER_PARITY = """
import numpy as np, tensorflow as tf, keras, sys
from tests.support.tiny_models import build_darkness_segmenter
from training.export.segmenter import export_segmenter, load_savedmodel_fn
repo = sys.argv[1] if len(sys.argv) > 1 else {repo!r}
model = build_darkness_segmenter()
done = export_segmenter(model, repo)
fn, name = load_savedmodel_fn(done.savedmodel)
x = np.random.default_rng(1).random((3, 256, 256, 3), dtype=np.float32)
np.testing.assert_allclose(fn(**{{name: tf.constant(x)}})["output_0"].numpy(), np.asarray(model(x)), atol=1e-5, rtol=0)
reloaded = keras.saving.load_model(str(done.keras_copy))
np.testing.assert_allclose(np.asarray(reloaded(x)), np.asarray(model(x)), atol=1e-5, rtol=0)
print("parity-ok", done.max_abs_diff)
"""

CLASSIFIER_PARITY = """
from dermassist.base.frameworks import without_triton_compiler; without_triton_compiler()
import numpy as np
import torch
import torch.nn.functional as F
from tests.support.tiny_models import build_classifier
from training.export.classifier import ClassifierCalibration, export_classifier
model = build_classifier(seed=3)
rng = np.random.default_rng(0)
means = rng.standard_normal((3, 512)).astype(np.float32)
a = rng.standard_normal((512, 512)).astype(np.float32) / 30
precision = (a @ a.T + np.eye(512, dtype=np.float32)).astype(np.float32)
calibration = ClassifierCalibration(temperature=2.5, ood_means=means, ood_precision=precision, ood_scale=7.0)
done = export_classifier(model, {repo!r}, calibration)
x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(2))
with torch.no_grad():
    m = model
    f = m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))))
    pooled = f.mean(dim=(2, 3))
    probs_eager = torch.softmax(m.fc(pooled) / 2.5, dim=1)
    d = pooled.numpy().astype(np.float64)[:, None, :] - means[None].astype(np.float64)
    ood_eager = np.sqrt(np.einsum("nkd,de,nke->nk", d, precision.astype(np.float64), d).min(axis=1)) / 7.0
    top = probs_eager.argmax(dim=1)
    w = m.fc.weight[top] - probs_eager @ m.fc.weight  # the gradient of log p_top by the pooled features, times T
    cam = torch.relu((w[:, :, None, None] * f).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=(224, 224), mode="bilinear", align_corners=False)[:, 0]
    cam = (cam / cam.amax(dim=(1, 2), keepdim=True) * 255).round()
    scripted = torch.jit.load(str(done.torchscript))
    probs, ood, cam_out = scripted(x)
    probs_alone = scripted.probabilities(x)
torch.testing.assert_close(probs, probs_eager, atol=1e-5, rtol=0)
torch.testing.assert_close(probs_alone, probs_eager, atol=1e-5, rtol=0)
torch.testing.assert_close(probs.sum(dim=1), torch.ones(4), atol=1e-5, rtol=0)
np.testing.assert_allclose(ood.numpy()[:, 0], ood_eager, rtol=1e-4)
assert cam_out.dtype == torch.uint8 and tuple(cam_out.shape) == (4, 224, 224)
# only operators an older libtorch (the GPU image's) has: a scripted F.interpolate brought aten::_upsample_lanczos2d_aa
graph = str(scripted.forward.inlined_graph)
assert "aten::upsample_bilinear2d" in graph and "lanczos" not in graph and "_aa(" not in graph, graph[-2000:]
assert int((cam_out.float() - cam).abs().max()) <= 1 and int(cam_out.amax()) == 255
print("parity-ok", done.max_abs_diff)
"""


def test_segmenter_savedmodel_matches_keras(tmp_path: Path) -> None:
    done = _run(SEGMENTER_PARITY.format(repo=str(tmp_path)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "parity-ok" in done.stdout
    assert (segmenter_artifact(tmp_path) / "saved_model.pb").is_file()


def test_classifier_torchscript_matches_eager_temperature_ood_and_cam(tmp_path: Path) -> None:
    done = _run(CLASSIFIER_PARITY.format(repo=str(tmp_path)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "parity-ok" in done.stdout
    assert classifier_artifact(tmp_path).is_file()
    written = json.loads((classifier_artifact(tmp_path).parent / "calibration.json").read_text())
    assert written["temperature"] == 2.5 and written["ood_scale"] == 7.0 and written["ood_classes"] == 3
    assert labels_file(tmp_path).read_text().split() == list(CLASS_CODES)


def test_classifier_export_refuses_other_architectures(tmp_path: Path) -> None:
    code = (
        "from dermassist.base.frameworks import without_triton_compiler; without_triton_compiler()\n"
        "import torchvision\n"
        "from training.export.classifier import export_classifier\n"
        "from training.errors import ModelArchitectureError\n"
        "for m in (torchvision.models.resnet18(num_classes=5), torchvision.models.resnet34(num_classes=8)):\n"
        "    try:\n"
        f"        export_classifier(m, {str(tmp_path)!r})\n"
        "    except ModelArchitectureError as e:\n"
        "        print('refused:', e)\n"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "8 outputs" in done.stdout and "blocks [2, 2, 2, 2]" in done.stdout
    assert not classifier_artifact(tmp_path).exists()


def test_export_command_round_trips_files_and_reports_bad_ones(tmp_path: Path) -> None:
    keras_file, state_file, repo = tmp_path / "seg.keras", tmp_path / "cls.pt", tmp_path / "repo"
    built = _run(
        "from tests.support.tiny_models import build_darkness_segmenter\n"
        f"build_darkness_segmenter().save({str(keras_file)!r})\n"
    )
    assert built.returncode == 0, built.stderr[-2000:]
    built = _run(
        "from dermassist.base.frameworks import without_triton_compiler; without_triton_compiler()\n"
        "import torch, torchvision\n"
        f"torch.save(torchvision.models.resnet18(num_classes=8).state_dict(), {str(state_file)!r})\n"
        f"torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), {str(tmp_path / 'three.pt')!r})\n"
    )
    assert built.returncode == 0, built.stderr[-2000:]
    cli = [sys.executable, "-m", "dermassist.cli", "export", "--repository", str(repo)]
    done = subprocess.run(cli + ["--keras", str(keras_file), "--torch", str(state_file)], capture_output=True, text=True,
                          cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert segmenter_artifact(repo).is_dir() and classifier_artifact(repo).is_file()
    bad = subprocess.run(cli + ["--torch", str(tmp_path / "three.pt")], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert bad.returncode != 0 and "3-class fc" in bad.stderr
    missing = subprocess.run(cli + ["--keras", str(tmp_path / "nope.keras")], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model")
    bad = subprocess.run(cli + ["--keras", str(junk)], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert bad.returncode != 0 and "cannot be loaded" in bad.stderr


def test_cli_help_is_instant_and_imports_no_framework() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from dermassist.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "heavy = [m for m in ('tensorflow', 'torch', 'keras', 'tritonclient') if m in sys.modules]\n"
        "print('heavy:', heavy)\n"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stdout
    for command in ("serve", "export", "synth", "train", "import", "bench"):
        sub = subprocess.run([sys.executable, "-m", "dermassist.cli", command, "--help"], capture_output=True, text=True,
                             cwd=PROJECT_ROOT)
        assert sub.returncode == 0 and "usage: dermassist" in sub.stdout, (command, sub.stderr[-500:])


def test_a_classifiers_colour_balance_joins_the_segmenters_crop_values(tmp_path: Path) -> None:
    from dermassist.base.repository import tuned_file
    from preprocess.contract import CROP_MODEL
    from preprocess.crop import CropParams
    from training.export.steps import set_crop_colour, write_crop_values
    from training.release import classifier_colour_constancy

    write_crop_values(tmp_path, CropParams(threshold=0.3, margin=0.12), {"val": {"jaccard": 0.75}}, "release 1")
    assert json.loads(tuned_file(tmp_path, CROP_MODEL).read_text())["source"] == "release 1"
    set_crop_colour(tmp_path, 6.0, "classifier stage")
    written = json.loads(tuned_file(tmp_path, CROP_MODEL).read_text())
    assert written["values"] == {"threshold": 0.3, "margin": 0.12, "colour_constancy": 6.0}
    # the threshold is still the release's, with its figures: the classifier stage names only what it set
    assert written["figures"] == {"val": {"jaccard": 0.75}}
    assert written["source"] == "threshold, margin: release 1; colour_constancy: classifier stage"
    assert written["sources"] == {"threshold": "release 1", "margin": "release 1", "colour_constancy": "classifier stage"}
    set_crop_colour(tmp_path / "fresh", 6.0, "classifier stage")  # no segmenter values yet: the defaults
    assert CropParams(**json.loads(tuned_file(tmp_path / "fresh", CROP_MODEL).read_text())["values"]) == \
        CropParams(colour_constancy=6.0)
    assert classifier_colour_constancy({"classifier": {"colour_constancy": 6}}) == 6.0
    assert classifier_colour_constancy({"classifier": {}}) == 0.0  # a release from before the setting


def test_a_segmenters_threshold_keeps_its_figures_and_each_value_its_origin(tmp_path: Path) -> None:
    """`train segmenter --repository` wrote "figures": {}, and the classifier stage then called the segmenter's
    threshold its own ("source": "classifier stage")."""
    from dermassist.base.repository import tuned_file
    from preprocess.contract import CROP_MODEL, DEFAULT_MARGIN
    from training.export.steps import set_crop_colour, set_crop_threshold

    val = {"dice": 0.8, "jaccard": 0.7}
    set_crop_threshold(tmp_path, 0.45, "segmenter stage runs/seg", {"val": val})
    set_crop_colour(tmp_path, 6.0, "classifier stage runs/cls")
    written = json.loads(tuned_file(tmp_path, CROP_MODEL).read_text())
    assert written["values"] == {"threshold": 0.45, "margin": DEFAULT_MARGIN, "colour_constancy": 6.0}
    assert written["figures"] == {"val": val}
    assert written["sources"] == {"threshold": "segmenter stage runs/seg", "margin": "contract default",
                                  "colour_constancy": "classifier stage runs/cls"}
    assert written["source"] == ("threshold: segmenter stage runs/seg; margin: contract default; "
                                 "colour_constancy: classifier stage runs/cls")
    set_crop_threshold(tmp_path, 0.5, "segmenter stage runs/seg2")  # no figures given: the old ones do not describe it
    again = json.loads(tuned_file(tmp_path, CROP_MODEL).read_text())
    assert again["figures"] == {} and again["sources"]["threshold"] == "segmenter stage runs/seg2"
    assert again["sources"]["colour_constancy"] == "classifier stage runs/cls"


def test_a_segmenter_that_gives_logits_is_refused_before_anything_is_written() -> None:
    from training.errors import ModelArchitectureError
    from training.export.segmenter import check_probabilities

    check_probabilities(np.linspace(0.0, 1.0, 11, dtype=np.float32))
    check_probabilities(np.array([0.2, np.nan], np.float32))  # NaN is the parity check's to name
    with pytest.raises(ModelArchitectureError, match=r"got values from -2.5 to 3.*add a sigmoid"):
        check_probabilities(np.array([-2.5, 0.5, 3.0], np.float32))


def _release(segmenter: float, classifier: float | None) -> dict:
    figures = {} if classifier is None else {"crop_threshold": classifier}
    return {"segmenter": {"threshold": segmenter}, "classifier": {"figures": figures}}


def test_a_half_built_release_is_refused_by_its_export(tmp_path: Path) -> None:
    """An interrupted `dermassist release --force` left a new segmenter (0.3) with the old classifier (crops at 0.7)."""
    from training.export.release import check_release_pair
    from training.release import RELEASE_DIR, ReleaseError, read_release

    check_release_pair(RELEASE_DIR, read_release(RELEASE_DIR))
    check_release_pair(tmp_path, _release(0.3, 0.3))
    check_release_pair(tmp_path, _release(0.3, None))  # a classifier that recorded no crop threshold: not checked
    with pytest.raises(ReleaseError, match=rf"release {tmp_path} is half-built: .* crops cut at mask threshold 0.7, but "
                                           r"its segmenter is served at 0.3, .*interrupted `dermassist release`.*run "
                                           r"`dermassist release` again"):
        check_release_pair(tmp_path, _release(0.3, 0.7))


def test_models_refuses_a_half_built_release_and_leaves_the_repository_as_it_was(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import shutil

    from dermassist.base.repository import RELEASE_STAMP, stage_repository
    from dermassist.cli import main
    from training.release import RELEASE_DIR, read_manifest, update_release

    release = tmp_path / "rel1"
    shutil.copytree(RELEASE_DIR, release)
    manifest = read_manifest(release)
    classifier = manifest["classifier"]
    update_release(release, {"classifier": {**classifier, "figures": {**classifier["figures"], "crop_threshold": 0.7}}})
    repo = stage_repository(tmp_path / "R")
    (repo / RELEASE_STAMP).write_text("stamp of the release it serves")
    with caplog.at_level(logging.ERROR):
        code = main(["models", "--release", str(release), "--repository", str(repo), "--reports", str(tmp_path / "rep")])
    assert code == 2 and "is half-built" in caplog.text and "run `dermassist release` again" in caplog.text
    from training.pipeline import export_release
    from training.release import ReleaseError

    with pytest.raises(ReleaseError, match="is half-built"):  # `dermassist release`'s own export refuses it too
        export_release(release, repo)
    assert (repo / RELEASE_STAMP).read_text() == "stamp of the release it serves"
    assert not (repo / "lesion_segmenter" / "1" / "model.savedmodel").exists()
    assert not (tmp_path / "rep" / "metrics.json").exists()


def test_a_crop_value_that_names_no_setting_is_an_export_error_not_a_type_error(tmp_path: Path) -> None:
    from dermassist.base.repository import tuned_file
    from preprocess.params import tuned_artifact
    from training.errors import ExportError
    from training.export.steps import set_crop_colour

    path = tuned_file(tmp_path, "lesion_crop")
    path.parent.mkdir(parents=True)
    path.write_text(tuned_artifact({"treshold": 0.45}, {}, "by hand"))
    with pytest.raises(ExportError, match=r"lesion_crop/1/tuned.json cannot be used: .*'treshold'.* mend it"):
        set_crop_colour(tmp_path, 6.0, "classifier stage")


def test_the_release_stamp_changes_with_the_export_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A repository exported from the same release by code that wrote other artifacts is not current."""
    from dermassist.commands.models import release_stamp
    from training.export import repository

    (tmp_path / "release.json").write_text("{}")
    before = release_stamp(tmp_path)
    assert release_stamp(tmp_path) == before
    monkeypatch.setattr(repository, "EXPORT_FORMAT", repository.EXPORT_FORMAT + 1)
    assert release_stamp(tmp_path) != before
