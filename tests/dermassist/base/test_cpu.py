"""Native bfloat16 detection from /proc/cpuinfo texts written by hand, and the training precision it picks."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dermassist.base.cpu import bfloat16_in, cpu_flags, native_bfloat16, precision_name, use_bfloat16

AVX2_ONLY = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse sse2 avx f16c fma avx2\nbugs\t\t: sysret_ss_attrs\n"
SKYLAKE_SERVER = "processor : 0\nflags : fpu avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl\n"
SAPPHIRE_RAPIDS = "processor : 0\nflags : avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


def test_flags_come_from_the_first_flags_line() -> None:
    assert cpu_flags(AVX2_ONLY) == frozenset({"fpu", "sse", "sse2", "avx", "f16c", "fma", "avx2"})
    assert cpu_flags("processor : 0\nFeatures : fp asimd bf16\n") == frozenset()  # no x86 flags line


@pytest.mark.parametrize(("cpuinfo", "native"), [(AVX2_ONLY, False), (SKYLAKE_SERVER, True), (SAPPHIRE_RAPIDS, True),
                                                 ("processor : 0\nflags : avx512f avx512bw\n", False)])
def test_native_bfloat16_needs_the_avx512_core_or_a_bf16_extension(cpuinfo: str, native: bool,
                                                                    tmp_path: Path) -> None:
    assert bfloat16_in(cpu_flags(cpuinfo)) is native
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    assert native_bfloat16(path) is native


def test_an_unreadable_cpuinfo_means_float32(tmp_path: Path) -> None:
    assert native_bfloat16(tmp_path / "absent") is False


def test_bfloat16_is_used_only_when_asked_and_native(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dermassist.base.cpu"):
        assert use_bfloat16(True, "classifier training", native=True) is True
        assert use_bfloat16(False, "classifier training", native=False) is False
        assert caplog.text == ""
        assert use_bfloat16(True, "segmenter training", native=False) is False
    assert "segmenter training: this CPU has no native bfloat16" in caplog.text and "float32 instead" in caplog.text
    assert (precision_name(True), precision_name(False)) == ("bfloat16", "float32")
