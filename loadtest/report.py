"""Read Locust's stats CSV and judge the run (requests made, unexpected failures, images analysed)."""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import LocustRunError

AGGREGATED = "Aggregated"
# Written by loadtest.final_stats when Locust quits: its periodic ``<prefix>_stats.csv`` misses the last requests.
FINAL_STATS_SUFFIX = "_final_stats.csv"
_BATCH = re.compile(r"^batch(\d+)$")
_REJECTED = ":rejected"


def images_per_request(name: str) -> int:
    """Images one request of a stats row carries: ``batchN`` N, a rejected bad input none, any other one."""
    if name.endswith(_REJECTED):
        return 0
    found = _BATCH.match(name)
    return int(found.group(1)) if found else 1


def final_stats_path(csv_prefix: str | Path) -> Path:
    """Where the final stats of a run with ``--csv csv_prefix`` go."""
    return Path(f"{csv_prefix}{FINAL_STATS_SUFFIX}")


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

    def successes_per_s(self) -> float:
        """Successful requests per second: Locust's requests per second (failures included) times the share that
        succeeded, i.e. successes over the run's duration."""
        return self.rps * (self.requests - self.failures) / self.requests if self.requests > 0 else 0.0

    def images_per_s(self) -> float:
        """Images analysed per second: successful requests per second times the images one request carries."""
        return self.successes_per_s() * images_per_request(self.name)


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

    def images_per_s(self) -> float:
        """Images analysed per second: each row's successful requests per second times the images one of its requests
        carries (a batch request counts its images, a rejected bad input none, a failed request none)."""
        return sum(r.images_per_s() for r in self.rows.values())

    def table(self) -> str:
        """A markdown table of the run: one row per request kind (their latencies), then the whole run's images per
        second (its latency columns mix single, batch and rejected requests, so they are not repeated)."""
        lines = ["| name | requests | failures | req/s | images/s | p50 ms | p95 ms | p99 ms |",
                 "|---|---|---|---|---|---|---|---|"]
        for r in self.rows.values():
            lines.append(f"| {r.name} | {r.requests} | {r.failures} | {r.rps:.2f} | {r.images_per_s():.2f} "
                         f"| {r.p50_ms:.0f} | {r.p95_ms:.0f} | {r.p99_ms:.0f} |")
        t = self.total
        lines.append(f"| all requests | {t.requests} | {t.failures} | {t.rps:.2f} | {self.images_per_s():.2f} | - | - | - |")
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
        raise LocustRunError(f"Locust stats CSV {path} does not exist; did Locust start and quit normally? "
                             "(see its log beside it)")
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
