"""Read Locust's ``<prefix>_stats.csv`` and judge the run (requests made, unexpected failures)."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .errors import LocustRunError

AGGREGATED = "Aggregated"


@dataclass(frozen=True)
class EndpointStats:
    """One row of Locust's stats CSV."""

    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    avg_ms: float


@dataclass(frozen=True)
class LoadtestSummary:
    """Per-name rows and the aggregate of one Locust run."""

    rows: dict[str, EndpointStats]
    total: EndpointStats

    @property
    def unexpected_failures(self) -> int:
        """Failures Locust recorded (expected rejections are reported as successes)."""
        return self.total.failures

    def ok(self) -> bool:
        """Requests were made and none failed unexpectedly."""
        return self.total.requests > 0 and self.unexpected_failures == 0

    def table(self) -> str:
        """A markdown table of the run."""
        lines = ["| name | requests | failures | req/s | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|---|---|"]
        for r in [*self.rows.values(), self.total]:
            lines.append(f"| {r.name} | {r.requests} | {r.failures} | {r.rps:.2f} | {r.p50_ms:.0f} | {r.p95_ms:.0f} "
                         f"| {r.p99_ms:.0f} |")
        return "\n".join(lines)


def _num(row: dict[str, str], key: str) -> float:
    raw = row.get(key, "") or "0"
    try:
        return float(raw)
    except ValueError:
        return float("nan")  # Locust writes "N/A" for percentiles of empty rows


def read_stats(stats_csv: Path) -> LoadtestSummary:
    """Parse a Locust stats CSV; raise LocustRunError when it is missing or has no aggregate row."""
    path = Path(stats_csv)
    if not path.is_file():
        raise LocustRunError(f"Locust stats CSV {path} does not exist; did Locust start? (see its log beside it)")
    rows: dict[str, EndpointStats] = {}
    total: EndpointStats | None = None
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            stats = EndpointStats(
                name=row["Name"], requests=int(_num(row, "Request Count")), failures=int(_num(row, "Failure Count")),
                rps=_num(row, "Requests/s"), p50_ms=_num(row, "50%"), p95_ms=_num(row, "95%"),
                p99_ms=_num(row, "99%"), avg_ms=_num(row, "Average Response Time"),
            )
            if row["Name"] == AGGREGATED:
                total = stats
            else:
                rows[row["Name"]] = stats
    if total is None:
        raise LocustRunError(f"{path} has no '{AGGREGATED}' row; the file is not a Locust stats CSV")
    return LoadtestSummary(rows, total)
