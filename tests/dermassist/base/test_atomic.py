"""``write_atomic``: a file is replaced whole or left as it was, and no temporary file stays behind."""
from __future__ import annotations

from pathlib import Path

import pytest

from dermassist.base.atomic import write_atomic


def test_a_write_replaces_the_file_whole_and_a_failed_one_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "answers.json"
    path.write_text("old")
    assert write_atomic(path, lambda partial: partial.write_text("new")) == path and path.read_text() == "new"

    def cut_short(partial: Path) -> None:
        partial.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, cut_short)
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["answers.json"]
    write_atomic(path, lambda partial: partial.write_text(partial.name), tmp_path / "own.partial.json")
    assert path.read_text() == "own.partial.json"  # a writer that insists on a suffix gets its own temporary name
