"""Triton's statistics extension: per-model queue and compute time, diffed around a measurement."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Duration fields of inference_stats we keep (compute_* together are the model's compute time).
FIELDS = ("queue", "compute_input", "compute_infer", "compute_output")


@dataclass(frozen=True)
class ModelStats:
    """Cumulative counters of one model (nanoseconds and counts) as Triton reports them."""

    inference_count: int
    execution_count: int
    ns: dict[str, int]

    def minus(self, before: ModelStats) -> ModelStats:
        """Counters accumulated since ``before``."""
        return ModelStats(
            self.inference_count - before.inference_count,
            self.execution_count - before.execution_count,
            {k: self.ns.get(k, 0) - before.ns.get(k, 0) for k in FIELDS},
        )

    def per_image_ms(self, field: str) -> float:
        """Milliseconds of ``field`` per inferred image (batch row)."""
        return self.ns.get(field, 0) / 1e6 / self.inference_count if self.inference_count else 0.0

    @property
    def compute_ms_per_image(self) -> float:
        """compute_input + compute_infer + compute_output per image."""
        return sum(self.per_image_ms(f) for f in ("compute_input", "compute_infer", "compute_output"))

    @property
    def mean_batch(self) -> float:
        """Rows per model execution (what dynamic batching achieved)."""
        return self.inference_count / self.execution_count if self.execution_count else 0.0


def parse_statistics(payload: dict[str, Any]) -> dict[str, ModelStats]:
    """Parse ``get_inference_statistics(as_json=True)`` (protobuf JSON: int64 arrive as strings)."""
    out: dict[str, ModelStats] = {}
    for model in payload.get("model_stats", []):
        inference = model.get("inference_stats", {})
        out[model["name"]] = ModelStats(
            inference_count=int(model.get("inference_count", 0)),
            execution_count=int(model.get("execution_count", 0)),
            ns={f: int(inference.get(f, {}).get("ns", 0)) for f in FIELDS},
        )
    return out


def snapshot(client: Any, headers: dict[str, str] | None = None) -> dict[str, ModelStats]:
    """Current statistics of every model from a tritonclient.grpc client (``headers``: the admin key)."""
    return parse_statistics(client.get_inference_statistics(model_name="", headers=headers, as_json=True))


def diff(after: dict[str, ModelStats], before: dict[str, ModelStats]) -> dict[str, ModelStats]:
    """Per-model counters accumulated between two snapshots."""
    empty = ModelStats(0, 0, {})
    return {name: stats.minus(before.get(name, empty)) for name, stats in after.items()}
