"""Where a classifier run writes: an --out that is a file is refused before any training, an earlier run's
outputs in --out are named as they are replaced."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from training.classifier.run import check_out_dir, run_classifier
from training.classifier.train import ClassifierConfig
from training.errors import TrainingConfigError
from training.run_folder import refuse_file_out


def test_an_out_that_is_a_file_is_refused_naming_it_and_the_fix(tmp_path: Path) -> None:
    """`dermassist train classifier --out afile` ended in a FileExistsError traceback once the crops were cut."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(TrainingConfigError, match=f"--out {afile} is a file; expected a folder .*pass another --out"):
        run_classifier(None, afile, "classifier", ClassifierConfig())  # type: ignore[arg-type]  # refused before the data
    with pytest.raises(TrainingConfigError, match=f"--out {afile / 'sub'} lies inside {afile}, which is a file"):
        refuse_file_out(afile / "sub")
    refuse_file_out(tmp_path / "new" / "folder")  # not there yet: the run makes it


def test_an_earlier_runs_outputs_in_out_are_named_as_they_are_replaced(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    with caplog.at_level(logging.WARNING, logger="training.classifier.run"):
        check_out_dir(out, "classifier")  # an empty folder: nothing to say
        assert caplog.records == []
        for name in ("classifier_metrics.json", "classifier_resnet18.pt", "other_metrics.json"):
            (out / name).write_text("{}")
        check_out_dir(out, "classifier")
    assert [r.getMessage() for r in caplog.records] == [
        f"--out {out} holds the outputs of an earlier run named 'classifier' (classifier_metrics.json, "
        "classifier_resnet18.pt): this run replaces them; pass another --out or --name to keep them"]


def test_the_classifier_stage_refuses_a_file_out_before_it_reads_the_data(tmp_path) -> None:
    from tests.training.conftest import run_python

    blocking = tmp_path / "afile"
    blocking.write_text("")
    proc = run_python("-m", "dermassist.cli", "train", "classifier", "--data", str(tmp_path / "no_data_here"), "--out",
                      str(blocking), "--epochs", "1", "--warmup-epochs", "0", "--low-res-epochs", "0", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"--out {blocking} is a file" in proc.stderr  # not the absent --data: nothing was read first
