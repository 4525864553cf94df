"""Read Locust's stats CSV and the answers' counts, and judge the run (requests made, unexpected failures, images
analysed, the share of them NOT ASSESSABLE)."""
from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dermassist.base.percentiles import percentile_cell, thin_footnote

from .errors import LocustRunError

AGGREGATED = "Aggregated"
# Written by loadtest.final_stats when Locust quits: its periodic ``<prefix>_stats.csv`` misses the last requests.
FINAL_STATS_SUFFIX = "_final_stats.csv"
FINAL_FAILURES_SUFFIX = "_final_failures.csv"  # beside it: each failure's request name, error text and occurrences
# Failures that mean a call waited its whole deadline (the server's, or at the run's end a --stop-timeout at least as
# long): not StopTimeoutTooShort, a call the setting cut before its deadline.
DEADLINE_WORDS = ("DEADLINE_EXCEEDED", "CutAtStop(")
# Written beside it by loadtest.answers: what the answers said and the calls retried, per scenario.
ANSWERS_SUFFIX = "_answers.json"
_BATCH = re.compile(r"^batch(\d+)$")
# How Locust stores a response time before its percentiles (locust.stats.bucket_response_time), told under the table.
LOCUST_ROUNDING = ("Locust rounds each response time before taking its percentiles: to 1 ms under 100 ms, to 10 ms "
                   "under 1 s, to 100 ms under 10 s, to 1 s above.")
_REJECTED = ":rejected"


def locust_min_samples(percent: float) -> int:
    """Fewest requests whose Locust percentile lies below the slowest one: Locust returns the slowest while
    n - 1 <= int(n x percent / 100) (``locust.stats.calculate_response_time_percentile``): 21 for p95, 101 for p99."""
    n = 1
    while n - 1 <= int(n * percent / 100):
        n += 1
    return n


def images_per_request(name: str) -> int:
    """Images one request of a stats row carries: ``batchN`` N, a rejected bad input none, any other one."""
    if name.endswith(_REJECTED):
        return 0
    found = _BATCH.match(name)
    return int(found.group(1)) if found else 1


def final_stats_path(csv_prefix: str | Path) -> Path:
    """Where the final stats of a run with ``--csv csv_prefix`` go."""
    return Path(f"{csv_prefix}{FINAL_STATS_SUFFIX}")


def final_failures_path(csv_prefix: str | Path) -> Path:
    """Where the final failures of a run with ``--csv csv_prefix`` go."""
    return Path(f"{csv_prefix}{FINAL_FAILURES_SUFFIX}")


def read_failures(path: Path) -> dict[str, int]:
    """Occurrences per error text of a ``_failures.csv`` (Locust's format); {} when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return {}
    counts: dict[str, int] = {}
    try:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                counts[row["Error"]] = counts.get(row["Error"], 0) + int(row["Occurrences"])
    except (ValueError, KeyError, TypeError) as e:
        raise LocustRunError(f"{path} is not a Locust failures CSV (columns Error and Occurrences): {e!r}") from e
    return counts


def answers_path(csv_prefix: str | Path) -> Path:
    """Where the answers' counts of a run with ``--csv csv_prefix`` go."""
    return Path(f"{csv_prefix}{ANSWERS_SUFFIX}")


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


@dataclass(frozen=True)
class AnswerCounts:
    """What the answers of one scenario (or of the whole run) said: images answered, NOT ASSESSABLE, referred; and
    the calls sent again after the server could not answer them, per status code."""

    images: int = 0
    not_assessable: int = 0
    refer: int = 0
    retries: Mapping[str, int] = field(default_factory=dict)

    @property
    def not_assessable_share(self) -> float | None:
        """Share of the answered images that came back NOT ASSESSABLE; None when no image was answered."""
        return _share(self.not_assessable, self.images)

    @property
    def refer_share(self) -> float | None:
        """Share of the answered images that came back REFER; None when no image was answered."""
        return _share(self.refer, self.images)

    @property
    def retried(self) -> int:
        """Calls sent again, every status code together."""
        return sum(self.retries.values())

    def text(self) -> str:
        """E.g. ``120 images, 2.5% not assessable, 48.3% refer, 4 retries (UNAVAILABLE 4)``."""
        retries = f"{self.retried} retries" + (f" ({_codes_text(self.retries)})" if self.retries else "")
        return (f"{self.images} images, {_percent(self.not_assessable_share)} not assessable, "
                f"{_percent(self.refer_share)} refer, {retries}")

    def to_json(self) -> dict[str, Any]:
        """The counts and shares as summary.json and ``PREFIX_answers.json`` hold them."""
        return {"images": self.images, "not_assessable": self.not_assessable, "refer": self.refer,
                "not_assessable_share": self.not_assessable_share, "refer_share": self.refer_share,
                "retries": dict(self.retries), "retried": self.retried}


def _codes_text(retries: Mapping[str, int]) -> str:
    return ", ".join(f"{code} {n}" for code, n in sorted(retries.items()))


def retries_text(retried: Mapping[str, Mapping[str, int]]) -> str:
    """Retries per scenario as people read them, e.g. ``single: UNAVAILABLE 3; batch8: UNAVAILABLE 1``."""
    return "; ".join(f"{scenario}: {_codes_text(codes)}" for scenario, codes in sorted(retried.items()))


def total_answers(answers: Mapping[str, AnswerCounts]) -> AnswerCounts:
    """The whole run's counts: every scenario's added up (a batch's images one by one)."""
    retries: dict[str, int] = {}
    for counts in answers.values():
        for code, n in counts.retries.items():
            retries[code] = retries.get(code, 0) + n
    return AnswerCounts(images=sum(c.images for c in answers.values()),
                        not_assessable=sum(c.not_assessable for c in answers.values()),
                        refer=sum(c.refer for c in answers.values()), retries=dict(sorted(retries.items())))


def not_assessable_problem(answers: Mapping[str, AnswerCounts], limit: float, setting: str) -> str | None:
    """Why a run failed on its answers: more of its answered images came back NOT ASSESSABLE than ``limit`` (a share;
    ``setting`` names how to change it); None when within the limit or when no image was answered."""
    total = total_answers(answers)
    share = total.not_assessable_share
    if share is None or share <= limit:
        return None
    per_scenario = ", ".join(f"{name} {_percent(c.not_assessable_share)}" for name, c in sorted(answers.items())
                             if c.images)
    return (f"{total.not_assessable} of {total.images} answered images ({share:.1%}; {per_scenario}) came back NOT "
            f"ASSESSABLE, over the limit of {limit:.1%} ({setting}): the images/s figure counts answers that analysed "
            "nothing. Likely causes: a corpus that is not dermoscopic images of skin lesions (LOADTEST_IMAGE_SOURCE; "
            "the bundled HAM10000 examples measure 0%), or broken models on the target (a segmenter that finds no "
            "lesion, a wrong profile or model release): look at one answer's NOTE with dermassist-client analyze. "
            "Raise the limit only for a corpus known to hold such images")


def read_answers(path: Path) -> dict[str, AnswerCounts]:
    """Parse ``PREFIX_answers.json``; raise LocustRunError when it is missing or not the answers' counts."""
    path = Path(path)
    if not path.is_file():
        raise LocustRunError(f"the answers' counts {path} do not exist; the locustfile writes them when Locust quits "
                             "(loadtest.answers): did Locust quit normally? (see its log beside it)")
    try:
        raw = json.loads(path.read_text())
        return {name: AnswerCounts(images=int(row["images"]), not_assessable=int(row["not_assessable"]),
                                   refer=int(row["refer"]), retries={k: int(v) for k, v in row["retries"].items()})
                for name, row in raw.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise LocustRunError(f"{path} does not hold the answers' counts (loadtest.answers writes them): {e!r}") from e


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
    answers: dict[str, AnswerCounts] = field(default_factory=dict)  # per row name (a rejected bad input has none)

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

    def total_answers(self) -> AnswerCounts:
        """The whole run's answers: images answered, NOT ASSESSABLE, referred, calls retried."""
        return total_answers(self.answers)

    def not_assessable_problem(self, limit: float, setting: str) -> str | None:
        """Why the run fails on its answers (see ``not_assessable_problem``), or None."""
        return not_assessable_problem(self.answers, limit, setting)

    def saturation_problem(self, failures: Mapping[str, int], users: int, deadline_s: float) -> str | None:
        """Why calls waited past their deadline, with the users the target could have answered in time (each user
        keeps one call in flight: by Little's law, its answered calls per second times the deadline); None when no
        failure in ``failures`` (occurrences per error text) is a passed deadline."""
        late = sum(n for error, n in failures.items() if any(word in error for word in DEADLINE_WORDS))
        if not late:
            return None
        answered = [r for r in self.rows.values() if images_per_request(r.name) and r.successes_per_s() > 0]
        calls_per_s = sum(r.successes_per_s() for r in answered)
        if not calls_per_s:
            return (f"{late} call(s) got no answer within the {deadline_s:g} s deadline and none was answered: the "
                    "target served nothing in time; check it answers one call (dermassist-client analyze), then "
                    "start with a few users")
        images_per_s = sum(r.images_per_s() for r in answered)
        fits = max(math.floor(calls_per_s * deadline_s + 1e-9), 1)  # Little's law: in flight = answered/s x wait
        answered_text = f"It answered {calls_per_s:.2f} calls/s ({images_per_s:.2f} images/s)"
        if users <= fits:  # the run's own pace had room for every user: the target slowed or stalled at some point
            return (f"{late} call(s) got no answer within the {deadline_s:g} s deadline, though {users} users are fewer "
                    f"than the about {fits} the target answers in time at its pace over the run ({answered_text}): it "
                    "slowed down or stalled during the run (report.html shows when); look at the server's log and "
                    "audit trail for that time")
        return (f"{late} call(s) got no answer within the {deadline_s:g} s deadline: {users} users, each with a call "
                f"in flight, asked more than the target serves. {answered_text}, so at most about {fits} users can "
                "each keep a call in flight and have it answered in time; measure capacity with fewer users than that "
                "(latency climbs from where the target saturates), or put more servers behind the address")

    def table(self) -> str:
        """A markdown table of the run: one row per request kind (their latencies, the shares of their answered images
        NOT ASSESSABLE and REFER, their retries), then the whole run's images per second and shares (its latency
        columns mix single, batch and rejected requests, so they are not repeated), and what the percentiles stand on."""
        lines = ["| name | requests | failures | req/s | images/s | p50 ms | p95 ms | p99 ms | not assessable | refer "
                 "| retries |",
                 "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows.values():
            a = self.answers.get(r.name, AnswerCounts())
            lines.append(f"| {r.name} | {r.requests} | {r.failures} | {r.rps:.2f} | {r.images_per_s():.2f} "
                         f"| {r.p50_ms:.0f} | {percentile_cell(r.p95_ms, 95, r.requests, '.0f', locust_min_samples)} "
                         f"| {percentile_cell(r.p99_ms, 99, r.requests, '.0f', locust_min_samples)} "
                         f"| {_percent(a.not_assessable_share)} "
                         f"| {_percent(a.refer_share)} | {a.retried} |")
        t, a = self.total, self.total_answers()
        lines.append(f"| all requests | {t.requests} | {t.failures} | {t.rps:.2f} | {self.images_per_s():.2f} | - | - | - "
                     f"| {_percent(a.not_assessable_share)} | {_percent(a.refer_share)} | {a.retried} |")
        lines += ["", f"{LOCUST_ROUNDING} {thin_footnote(locust_min_samples)}"]
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
