"""The lazy command line: a subcommand (and a train model) loads its flags from the argv it is given."""
from __future__ import annotations

import subprocess
import sys

import pytest

from dermassist.cli import first_word
from tests.conftest import PROJECT_ROOT


def test_first_word_skips_options() -> None:
    assert first_word(["-v", "train", "classifier"]) == "train"
    assert first_word(["--verbose"]) is None


@pytest.mark.parametrize(("model", "flag"), [("classifier", "--low-res-epochs"), ("segmenter", "--predict-masks")])
def test_main_called_from_code_shows_the_chosen_models_flags(model: str, flag: str) -> None:
    # main() gets its own argv while the process's sys.argv names no command (as when a script calls it).
    code = f"import sys; from dermassist.cli import main; sys.exit(main(['train', '{model}', '--help']))"
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert flag in done.stdout


def test_top_level_help_lists_every_command_under_a_whole_sentence() -> None:
    from dermassist.cli import COMMANDS, DESCRIPTION, build_parser

    text = build_parser(["--help"]).format_help()
    assert DESCRIPTION.endswith(".") and " ".join(DESCRIPTION.split()) in " ".join(text.split())
    assert all(name in text for name in COMMANDS)


def test_synth_into_a_file_and_import_of_an_empty_file_are_named(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from dermassist.cli import main

    a_file = tmp_path / "not_a_folder"
    a_file.write_text("x")
    with caplog.at_level(logging.ERROR):
        assert main(["synth", str(a_file), "--count", "8"]) == 2
    assert f"synth out {a_file} is a file; expected a folder" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):  # refused before any image is made: OpenCV has no writer for .txt
        assert main(["synth", str(tmp_path / "set"), "--count", "8", "--grid", str(tmp_path / "grid.txt")]) == 2
    assert "synth --grid" in caplog.text and "ends in '.txt'" in caplog.text and not (tmp_path / "set").exists()
    from training.errors import ImportModelError
    from training.importer import run_import

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ImportModelError, match="empty.pt cannot be loaded \\(EOFError\\)"):
        run_import("torch", empty, tmp_path / "repo")


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """`make bench` stopped with Ctrl-C exited 130 without a word of its own."""
    from dermassist import cli
    from dermassist.commands import bench

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "run", interrupted)
    assert cli.main(["bench"]) == 130
    assert "interrupted (Ctrl-C): dermassist bench stopped before it finished" in caplog.text


def test_a_sigterm_a_training_run_turned_into_an_interrupt_is_told_as_such_and_exits_143(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from dermassist import cli
    from dermassist.commands import bench
    from training.signals import Terminated

    def terminated(args: object) -> int:
        raise Terminated("stopped by signal SIGTERM")

    monkeypatch.setattr(bench, "run", terminated)
    assert cli.main(["bench"]) == 143
    assert "interrupted (stopped by signal SIGTERM): dermassist bench stopped before it finished" in caplog.text
