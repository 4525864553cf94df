"""Whether this CPU computes bfloat16 natively, so training may use it (standard library only).

PyTorch's and TensorFlow's CPU kernels (oneDNN) run bfloat16 convolutions fast only on x86 CPUs with
AVX-512 (the ``avx512bw``/``avx512vl``/``avx512dq`` core, the criterion of PyTorch's own
``torch.ops.mkldnn._is_mkldnn_bf16_supported``) or with the AVX-512 BF16 / AMX extensions. Elsewhere they
fall back to reference code: measured on a 2-core AVX2 machine (AMD EPYC), a ResNet18 training step at
160 px took 30 s under bfloat16 autocast against 2.1 s in float32, and a ResNet-UNet step under Keras's
``mixed_bfloat16`` 20 s against 2.4 s. There, bfloat16 would turn a one-hour training run into a day.
"""
from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
#: Any one of these flag sets in /proc/cpuinfo means native bfloat16.
BFLOAT16_FLAG_SETS: tuple[frozenset[str], ...] = (
    frozenset({"avx512_bf16"}),
    frozenset({"amx_bf16"}),
    frozenset({"avx512bw", "avx512vl", "avx512dq"}),
)


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first processor in a /proc/cpuinfo text (empty when it lists none)."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def bfloat16_in(flags: frozenset[str]) -> bool:
    """Whether a set of x86 feature flags includes native bfloat16 (see ``BFLOAT16_FLAG_SETS``)."""
    return any(needed <= flags for needed in BFLOAT16_FLAG_SETS)


def native_bfloat16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether this machine's CPU computes bfloat16 natively; False where /proc/cpuinfo cannot be read."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    return bfloat16_in(cpu_flags(text))


def use_bfloat16(requested: bool, what: str, native: bool | None = None) -> bool:
    """Whether ``what`` trains in bfloat16: when requested and the CPU has it natively; else float32, said once.

    ``native`` defaults to :func:`native_bfloat16`.
    """
    if not requested:
        return False
    if native is None:
        native = native_bfloat16()
    if not native:
        logger.warning("%s: this CPU has no native bfloat16 (AVX-512 or AMX), where bfloat16 runs 8-15x slower than "
                       "float32; training in float32 instead (figures differ from a bfloat16 run in the last digits)",
                       what)
    return native


def precision_name(bfloat16: bool) -> str:
    """The name a training report records for its arithmetic."""
    return "bfloat16" if bfloat16 else "float32"
