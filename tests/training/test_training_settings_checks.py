"""The training commands' settings and flags (audit findings 4, 5, 10, 12, 13): every float setting of both configs is
refused when not finite or out of range, as the config is built; flags are taken only as spelt; a wrong --data leaves
no --out behind; the ETA after the first epoch and the figures in the log lines read well."""
from __future__ import annotations

import argparse
import math

import pytest

from training.errors import TrainingConfigError

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("values, message", [
    ({"learning_rate": NAN}, r"--lr / DERMASSIST_CLS_LR must be a finite number in \(0, 1\) \(the peak learning rate\), "
                             r"got nan; pass a value in \(0, 1\), e.g. the default 0.002"),
    ({"learning_rate": 0.0}, r"--lr / DERMASSIST_CLS_LR must be .* got 0.0"),
    ({"learning_rate": -1e-3}, r"--lr / DERMASSIST_CLS_LR must be .* got -0.001"),
    ({"weight_decay": -1.0}, r"--weight-decay / DERMASSIST_CLS_WEIGHT_DECAY must be a finite number in \[0, 1\] .*got -1.0"),
    ({"weight_decay": NAN}, r"--weight-decay / DERMASSIST_CLS_WEIGHT_DECAY .*got nan"),
    ({"mixup": NAN}, r"--mixup / DERMASSIST_CLS_MIXUP must be a finite number in \[0, 10\] .*got nan; .*default 0"),
    ({"mixup": INF}, r"--mixup / DERMASSIST_CLS_MIXUP .*got inf"),
    ({"mixup": -0.2}, r"--mixup / DERMASSIST_CLS_MIXUP .*got -0.2"),
    ({"label_smoothing": NAN}, r"--label-smoothing / DERMASSIST_CLS_LABEL_SMOOTHING .*got nan"),
    ({"balance": INF}, r"--balance / DERMASSIST_CLS_BALANCE .*got inf"),
    ({"dropout": NAN}, r"--dropout / DERMASSIST_CLS_DROPOUT .*got nan"),
    ({"ema": 1.0}, r"--ema / DERMASSIST_CLS_EMA must be a finite number in \[0, 0.99999\] .*got 1.0"),
    ({"select_after": NAN}, r"--select-after / DERMASSIST_CLS_SELECT_AFTER .*got nan"),
    ({"white_balance": -INF}, r"--white-balance / DERMASSIST_CLS_WHITE_BALANCE .*got -inf"),
])
def test_every_float_setting_of_the_classifier_is_checked(values: dict, message: str) -> None:
    from training.classifier.train import ClassifierConfig

    with pytest.raises(TrainingConfigError, match=message):
        ClassifierConfig(**values)


@pytest.mark.parametrize("variable, raw, message", [
    ("DERMASSIST_CLS_LR", "nan", r"--lr / DERMASSIST_CLS_LR must be .*got nan"),
    ("DERMASSIST_CLS_WEIGHT_DECAY", "nan", r"DERMASSIST_CLS_WEIGHT_DECAY .*got nan"),
    ("DERMASSIST_CLS_MIXUP", "nan", r"DERMASSIST_CLS_MIXUP .*got nan"),
])
def test_the_environment_is_checked_as_the_flags_are(variable: str, raw: str, message: str) -> None:
    from training.classifier.train import ClassifierConfig

    with pytest.raises(TrainingConfigError, match=message):
        ClassifierConfig.resolve({}, {variable: raw})
    with pytest.raises(TrainingConfigError, match=r"--lr / DERMASSIST_CLS_LR .*got nan"):
        ClassifierConfig.resolve({"learning_rate": NAN}, {})


def test_the_refer_safety_factor_must_be_finite() -> None:
    from training.classifier.stage import StageOptions

    for bad in (INF, NAN, 0.0):
        with pytest.raises(TrainingConfigError, match=r"--refer-safety / DERMASSIST_CLS_REFER_SAFETY must be a finite "
                                                      r"number > 0 .*got "):
            StageOptions(refer_safety=bad)


def test_a_classifier_flag_is_taken_only_as_spelt() -> None:
    from training.classifier.stage import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--data", "d", "--epochs", "2"]).epochs == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "d", "--epoch", "2"])  # once taken as --epochs 2


def test_the_eta_after_the_first_epoch_is_not_scaled_from_its_start_up() -> None:
    from training.classifier.train import epoch_eta_text

    sizes = (64, 224, 224, 224)
    assert epoch_eta_text([28.0], sizes) == "estimating time left"  # was "about 6 min left" from the first epoch alone
    assert epoch_eta_text([28.0, 20.0], sizes) == "about 40 s left"  # the epochs after the first, at their size
    assert epoch_eta_text([28.0, 20.0, 20.0, 20.0], sizes) == "done"
    assert epoch_eta_text([5.0], (64,)) == "done"


def test_a_melanoma_auc_is_logged_to_three_decimals() -> None:
    from training.classifier.run import auc_text

    assert auc_text(0.9166666666666666) == "0.917"
    assert auc_text(None).startswith("n/a")


def test_the_segmenter_settings_and_flags_are_checked(tmp_path) -> None:
    """TensorFlow in its own process (torchvision imported after it crashes)."""
    from tests.training.conftest import run_python

    code = """
import math
from training.errors import TrainingConfigError
from training.segmenter.model import UNetConfig
from training.segmenter.train import SegmenterConfig
for make in (lambda: SegmenterConfig(learning_rate=math.nan), lambda: SegmenterConfig.resolve({}, {"DERMASSIST_SEG_LR": "inf"}),
             lambda: UNetConfig(width=math.nan)):
    try:
        make()
    except TrainingConfigError as e:
        print(e)
"""
    proc = run_python("-c", code, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == ("--lr / DERMASSIST_SEG_LR must be a finite number in (0, 1) (the peak learning rate), got nan; "
                        "pass a value in (0, 1), e.g. the default 0.002")
    assert lines[1].startswith("--lr / DERMASSIST_SEG_LR must be a finite number in (0, 1)") and "got inf" in lines[1]
    assert lines[2].startswith("--width / DERMASSIST_SEG_WIDTH must be a finite number in [0.03, 2]") and "got nan" in lines[2]

    out = tmp_path / "seg"
    proc = run_python("-m", "dermassist.cli", "train", "segmenter", "--data", str(tmp_path / "isic2017"), "--out", str(out),
                      "--epochs", "2", timeout=120)
    assert proc.returncode == 2 and "isic2017" in proc.stderr, proc.stderr[-2000:]
    assert not out.exists()  # a wrong --data leaves no empty --out behind
    proc = run_python("-m", "dermassist.cli", "train", "segmenter", "--data", str(tmp_path), "--epoch", "1", timeout=120)
    assert proc.returncode == 2 and "unrecognized arguments: --epoch 1" in proc.stderr, proc.stderr[-2000:]
    proc = run_python("-m", "training.segmenter.stage", "--data", str(tmp_path), "--epoch", "1", timeout=120)
    assert proc.returncode == 2 and "unrecognized arguments: --epoch 1" in proc.stderr, proc.stderr[-2000:]


def test_a_whole_picture_classifier_is_not_exported_into_a_repository_that_serves_crops(tmp_path) -> None:
    from training.classifier.stage import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", str(tmp_path), "--full-image", "--repository", str(tmp_path / "repo"),
                              "--out", str(tmp_path / "out")])
    with pytest.raises(TrainingConfigError, match="--full-image trains on whole pictures, but the repository .* serves "
                                                  "the classifier the lesion crop"):
        run(args)
    assert not (tmp_path / "repo").exists() and not (tmp_path / "out").exists()  # refused before anything was made


def test_a_classifier_with_no_mask_for_any_image_is_not_exported_into_a_served_repository(tmp_path) -> None:
    """A site folder trained without --predicted-masks classifies every picture whole: it was exported behind the
    segmenter with a record of crops it never saw, though import refuses the same file (review 11)."""
    from tests.training.site_folders import nevi, site
    from training.classifier.stage import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", str(site(tmp_path / "clinic", nevi("A", 20))), "--repository",
                              str(tmp_path / "repo"), "--out", str(tmp_path / "out"), "--epochs", "1",
                              "--warmup-epochs", "0", "--no-bf16"])
    with pytest.raises(TrainingConfigError, match=r"trained on whole pictures \(no training image had a mask\) and "
                                                  "exported into .*repo, but the served pipeline classifies the lesion "
                                                  "crop"):
        run(args)
    assert not (tmp_path / "repo").exists() and not (tmp_path / "out").exists()  # refused before any training
