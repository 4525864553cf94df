"""The --pretrained file check: its SHA-256 is logged, and a torchvision-style name must match its digest."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from training.classifier.train import check_pretrained_file
from training.errors import TrainingConfigError


def test_a_pretrained_files_digest_is_returned_and_must_begin_as_its_name_says(tmp_path: Path) -> None:
    data = b"weights" * 300_000  # over one 1 MiB read block
    digest = hashlib.sha256(data).hexdigest()
    named = tmp_path / f"resnet18-{digest[:8]}.pth"
    named.write_bytes(data)
    assert check_pretrained_file(named) == digest
    plain = tmp_path / "resnet18.pth"  # no digest in its name: nothing to compare
    plain.write_bytes(data)
    assert check_pretrained_file(plain) == digest
    wrong = tmp_path / "resnet18-f37072fd.pth"
    wrong.write_bytes(data)
    with pytest.raises(TrainingConfigError, match=f"its SHA-256 {digest} does not begin with f37072fd"):
        check_pretrained_file(wrong)
