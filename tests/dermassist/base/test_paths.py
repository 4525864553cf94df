"""What the file system's shape tells of a folder a command is to write to (``folder_problem``, ``file_in_the_way``)."""
from __future__ import annotations

from pathlib import Path

from dermassist.base.paths import file_in_the_way, folder_problem


def test_folder_problem_reads_only_the_shape_of_the_path(tmp_path: Path) -> None:
    assert folder_problem(tmp_path) is None and folder_problem(tmp_path / "a" / "b") is None
    assert not (tmp_path / "a").exists()  # nothing is made by the check


def test_a_file_or_a_file_above_is_named(tmp_path: Path) -> None:
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    assert folder_problem(afile) == "is a file"
    assert file_in_the_way(afile / "run" / "out") == afile
    assert folder_problem(afile / "run") == f"cannot be made: {afile} is a file, not a folder"
