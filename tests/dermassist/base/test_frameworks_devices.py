"""The torch device names a setting may hold, and what is said when the host lacks that GPU."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from dermassist.base.frameworks import is_torch_device, missing_gpu


@pytest.mark.parametrize(("name", "ok"), [("cpu", True), ("cuda", True), ("cuda:0", True), ("cuda:12", True),
                                          ("gpu", False), ("cuda:", False), ("cuda:x", False), ("cuda1", False),
                                          ("CPU", False), ("", False)])
def test_device_names(name: str, ok: bool) -> None:
    assert is_torch_device(name) is ok


def _torch(gpus: int) -> SimpleNamespace:
    cuda = SimpleNamespace(is_available=lambda: gpus > 0, device_count=lambda: gpus)
    return SimpleNamespace(cuda=cuda, __version__="9.9")


def test_a_gpu_is_missing_when_its_index_is_not_below_the_count() -> None:
    assert missing_gpu(_torch(0), "cpu") is None
    assert missing_gpu(_torch(2), "cuda") is None and missing_gpu(_torch(2), "cuda:1") is None
    assert missing_gpu(_torch(2), "cuda:2") == "device 'cuda:2' asked for, but torch 9.9 sees 2 GPU(s), numbered from 0"
    assert missing_gpu(_torch(0), "cuda") == "device 'cuda' asked for, but torch 9.9 sees no CUDA device"
