"""What ``dermassist demo`` tells the page about the served model version: the classes its classifier has no training
images of, read from what the export recorded beside the classifier (the shipped release's: SCC; a release trained on
every class: none; a classifier without recorded counts: none claimed), and the same page retries and protocol as
``dermassist-client demo``."""
from __future__ import annotations

import copy
import inspect
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from dermassist.base.repository import stage_repository
from training.errors import ExportError
from training.release import CLASSIFIER_WEIGHTS, MANIFEST, RELEASE_DIR, SEGMENTER_WEIGHTS, read_release


def export_classifier(release: Path, repository: Path) -> Path:
    """The release's classifier exported into a staged repository, as ``dermassist models`` exports it (the child
    process ``training.pipeline.export_release`` runs for it: torch never loads in this one)."""
    from training.child import run_child

    stage_repository(repository)
    run_child("training.export.release", ["classifier", str(release), str(repository)], ExportError,
              f"classifier export of {release}")
    return repository


def release_copy(folder: Path, edit) -> Path:
    """A release folder holding the shipped release's weights and its release.json changed by ``edit``."""
    folder.mkdir()
    release = copy.deepcopy(read_release(RELEASE_DIR))
    edit(release)
    (folder / MANIFEST).write_text(json.dumps(release))
    for name in (SEGMENTER_WEIGHTS, CLASSIFIER_WEIGHTS):
        (folder / name).symlink_to(RELEASE_DIR / name)
    return folder


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository serving the shipped release's classifier, exported by the project's own export."""
    return export_classifier(RELEASE_DIR, tmp_path_factory.mktemp("shipped") / "repository")


def _trained_on_scc(release: dict) -> None:
    """Like a synthetic release (``dermassist models --synthetic`` trains SCC): SCC images beyond those held out."""
    source = next(iter(release["classifier"]["figures"]["dataset"].values()))
    source["class_counts"]["SCC"] = source["class_counts"].get("SCC", 0) + 40


def _page_rows(not_learnt: tuple[str, ...], tmp_path: Path) -> tuple[list[tuple[str, str]], str, str]:
    """The probability rows, the caveat and the intended use the demo page shows when told ``not_learnt``."""
    from PIL import Image

    from dermassist_client import demo  # gradio: the [demo] extra, which `make test` installs
    from tests.client.test_demo_page import _Client, _result, _rows

    picture = tmp_path / "lesion.png"
    Image.new("RGB", (600, 450), (200, 150, 130)).save(picture)
    shown = demo.analyze_file(_Client(_result()), str(picture), not_learnt=not_learnt)
    page = demo.build_demo("127.0.0.1:1", not_learnt=not_learnt)
    (intended,) = [b.value for b in page.blocks.values() if getattr(b, "elem_id", None) == "intended-use"]
    return _rows(shown.probabilities), shown.probabilities.split("</table>")[1], intended


def test_the_shipped_releases_export_records_scc_as_untrained_and_the_page_marks_it_not_learnt(shipped, tmp_path,
                                                                                                caplog) -> None:
    """What the page showed for the shipped release before, now read from the exported artifact, not release.json."""
    from dermassist.commands.demo import served_not_learnt
    from training.export.steps import UNTRAINED_KEY, calibration_file

    assert json.loads(calibration_file(shipped).read_text())[UNTRAINED_KEY] == ["SCC"]
    with caplog.at_level(logging.WARNING):
        not_learnt = served_not_learnt(shipped)
    assert not_learnt == ("SCC",) and not caplog.records
    rows, caveat, intended = _page_rows(not_learnt, tmp_path)
    assert rows[-1] == ("Squamous cell carcinoma (SCC)", "not learnt: no training images")
    assert all(value.endswith("%") for _, value in rows[:-1]) and len(rows) == 8
    assert "never learnt squamous cell carcinoma" in caveat
    assert "It never learnt squamous cell carcinoma (no training images)." in intended


def test_a_release_trained_on_scc_records_no_untrained_class_and_the_page_marks_nothing(tmp_path) -> None:
    from dermassist.commands.demo import served_not_learnt
    from training.export.steps import UNTRAINED_KEY, calibration_file

    release = release_copy(tmp_path / "release", _trained_on_scc)
    repository = export_classifier(release, tmp_path / "repository")
    assert json.loads(calibration_file(repository).read_text())[UNTRAINED_KEY] == []
    assert served_not_learnt(repository) == ()
    rows, caveat, intended = _page_rows((), tmp_path)
    assert dict(rows)["Squamous cell carcinoma (SCC)"].endswith("%") and len(rows) == 8
    assert "never learnt" not in caveat and "never learnt" not in intended


def test_a_classifier_without_recorded_training_counts_claims_no_class_and_the_demo_warns(tmp_path, caplog) -> None:
    """A release whose figures do not count its training images (or a classifier imported, or exported before the
    classes were recorded): unknown, so no class is called never learnt, and ``dermassist demo`` says so."""
    from dermassist.base.repository import IMPORTED, RELEASE_STAMP
    from dermassist.commands.demo import served_not_learnt
    from training.export.release import untrained_of
    from training.export.steps import UNTRAINED_KEY, calibration_file, record_untrained_classes

    release = copy.deepcopy(read_release(RELEASE_DIR))
    assert untrained_of(release) == ("SCC",)
    del release["classifier"]["figures"]["val_by_source"]
    assert untrained_of(release) is None
    repository = stage_repository(tmp_path / "repository")
    path = calibration_file(repository)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"temperature": 1.0, UNTRAINED_KEY: ["SCC"]}))  # an earlier classifier's record
    record_untrained_classes(repository, None)
    assert UNTRAINED_KEY not in json.loads(path.read_text()) and json.loads(path.read_text())["temperature"] == 1.0
    with caplog.at_level(logging.WARNING):
        assert served_not_learnt(repository) == ()
    assert f"{path} records no {UNTRAINED_KEY}" in caplog.text and "dermassist models --force" in caplog.text
    (repository / RELEASE_STAMP).write_text(f"{IMPORTED} classifier from a site's run\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert served_not_learnt(repository) == ()
    # --force would replace the imported models with the release: not advised for them (review finding)
    assert "an imported classifier" in caplog.text and "--force" not in caplog.text


@pytest.mark.parametrize(("recorded", "shown"), [("SCC", "'SCC'"), (["SCC", "XYZ"], r"\['SCC', 'XYZ'\]")])
def test_an_unusable_record_is_a_repository_error_naming_the_file_and_the_fix(tmp_path, recorded, shown) -> None:
    from dermassist.base.errors import RepositoryError
    from training.export.steps import UNTRAINED_KEY, calibration_file, served_untrained_classes

    path = calibration_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({UNTRAINED_KEY: recorded}))
    with pytest.raises(RepositoryError, match=rf"{path}: {UNTRAINED_KEY} must be a list of class codes \(some of AK, "
                                              rf"BCC, .*\), got {shown}; export the release again"):
        served_untrained_classes(tmp_path)


# --- the page as each demo command starts it -----------------------------------------------------------------


class _Page:
    def close(self) -> None:
        """Nothing to stop."""


def _recording_launch(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the page's launch (and the wait for Ctrl-C) with a recorder of the arguments it was given, each with the
    defaults of those it was not given filled in."""
    from dermassist_client import demo  # gradio: the [demo] extra, which `make test` installs
    launched: list[dict[str, Any]] = []
    signature = inspect.signature(demo.launch_demo)

    def launch(*args: Any, **kwargs: Any) -> tuple[_Page, str]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        launched.append({**bound.arguments, **bound.arguments.pop("options", {})})
        return _Page(), "http://127.0.0.1:1/"

    def wait(alive=None, on_ready=None) -> int:
        return 0

    monkeypatch.setattr(demo, "launch_demo", launch)
    monkeypatch.setattr(demo, "wait_for_signal", wait)
    return launched


def _run_dermassist_demo(monkeypatch: pytest.MonkeyPatch, repository: Path) -> None:
    """``dermassist demo --repository REPOSITORY`` with the guard and the server replaced (the page's launch is too)."""
    import argparse

    import dermassist.base.repository as base_repository
    import dermassist.guard.background as guard_module
    from dermassist.base.server import free_ports
    from dermassist.commands import demo as command

    class Guard:
        grpc_address, running = "127.0.0.1:8001", True

        def __init__(self, *args: Any) -> None:
            """Starts nothing."""

        def __enter__(self) -> Guard:
            return self

        def __exit__(self, *exc: object) -> None:
            """Stops nothing."""

    monkeypatch.setattr(guard_module, "BackgroundGuard", Guard)
    monkeypatch.setattr(base_repository, "require_artifacts", lambda *args: None)  # no segmenter: not served here
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    (port,) = free_ports(1)
    assert command.run(parser.parse_args(["--repository", str(repository), "--port", str(port)])) == 0


def test_both_demo_commands_give_the_page_the_same_retries_and_protocol_and_the_served_untrained_classes(
        shipped, monkeypatch) -> None:
    """``dermassist demo`` and ``dermassist-client demo`` without flags: DEMO_RETRIES and ClientConfig's protocol both;
    the served classes never learnt from the repository, none from the thin client unless told (``--not-learnt``)."""
    from dermassist_client.cli import main
    from dermassist_client.config import DEMO_RETRIES, config_default

    launched = _recording_launch(monkeypatch)
    _run_dermassist_demo(monkeypatch, shipped)
    assert main(["demo"]) == 0
    assert main(["demo", "--not-learnt", "scc"]) == 0
    server, client, told = launched
    assert server["retries"] == client["retries"] == told["retries"] == DEMO_RETRIES
    assert server["protocol"] == client["protocol"] == config_default("protocol")
    assert (tuple(server["not_learnt"]), tuple(client["not_learnt"]), tuple(told["not_learnt"])) == (("SCC",), (),
                                                                                                     ("SCC",))
    assert server["refer_threshold"] == read_release(RELEASE_DIR)["triage"]["values"]["refer_threshold"]
