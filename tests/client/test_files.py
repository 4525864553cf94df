"""The one wording of what a path names when it is not a regular file (dermassist_client.files)."""
from __future__ import annotations

import os
import socket
import stat

from dermassist_client.files import mode_kind, path_kind


def test_each_kind_of_stat_mode_is_named_and_a_regular_file_is_none() -> None:
    assert mode_kind(stat.S_IFREG | 0o644) is None
    assert mode_kind(stat.S_IFDIR | 0o755) == "a folder"
    assert mode_kind(stat.S_IFIFO | 0o600) == "a named pipe (FIFO)"
    assert mode_kind(stat.S_IFCHR | 0o666) == "a character device"
    assert mode_kind(stat.S_IFBLK | 0o660) == "a block device"
    assert mode_kind(stat.S_IFSOCK | 0o777) == "a socket"
    assert mode_kind(0) == "not a regular file"  # no type bits: still never read


def test_paths_are_looked_at_without_being_opened(tmp_path) -> None:
    picture = tmp_path / "photo.jpg"
    picture.write_bytes(b"\xff\xd8\xff")
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)  # opening it would block: path_kind must only stat it
    link = tmp_path / "to_folder"
    link.symlink_to(tmp_path)
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tmp_path / "sock"))
        assert path_kind(tmp_path / "sock") == "a socket"
    assert path_kind(picture) is None
    assert path_kind(pipe) == "a named pipe (FIFO)"
    assert path_kind("/dev/zero") == "a character device"
    assert path_kind(link) == "a folder"  # a link is judged by what it names
    assert path_kind(tmp_path / "missing.jpg") is None and path_kind("a\0b") is None  # the caller's open says why
