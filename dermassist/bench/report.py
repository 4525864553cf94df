"""Bench results -> markdown table, JSON and the performance targets of issue 5."""
from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

from preprocess.contract import CROP_MODEL, PREPARE_MODEL, STEP_MODELS, TRIAGE_MODEL

from ..base.percentiles import percentile_cell, thin_footnote
from .cpu import SERVER
from .front import DIRECT_PATH, FrontCost, FrontCosts
from .inprocess import InProcessResult
from .latency import LatencySummary
from .perf_analyzer import PerfAnalyzerRow
from .served import ServedLevel

THROUGHPUT_TARGET_C = 4
THROUGHPUT_TARGET = 1.0  # served images/s at c=4 >= 1.0 x in-process sequential
P50_TARGET = 1.3  # served p50 at c=1 <= 1.3 x in-process p50
STEP_SHARE_TARGET = 0.10  # prepare and lesion_crop each < 10% of end-to-end compute
TRIAGE_COST_TARGET = 0.10  # the triage outputs (quality, OOD, CAM, the triage step) <= 10% of served p50 at c=1


@dataclass(frozen=True)
class Target:
    """One performance target and whether this run met it."""

    name: str
    value: float
    limit: float
    met: bool


@dataclass(frozen=True)
class BenchResult:
    """Everything one ``dermassist bench`` run measured."""

    machine: str
    corpus: str
    inprocess: InProcessResult
    served: list[ServedLevel]
    perf_analyzer: list[PerfAnalyzerRow] = field(default_factory=list)
    perf_analyzer_note: str = ""
    front: FrontCosts | None = None  # what `dermassist serve`'s gRPC front adds (audit, readiness), per level and TLS
    models: str = "not recorded"  # which models were served: the repository's release stamp
    load_average: tuple[float, float] | None = None  # the machine's 1-minute load average before and after the run
    started_utc: str = ""  # when the run began (ISO 8601, UTC): which run a report is, beside the next one
    settings: str = ""  # what the run was asked for (levels, requests, warm-up, passes), to compare runs like for like
    stopped: str = ""  # why the run stopped before its end (the report then holds the levels measured before it)

    def level(self, concurrency: int) -> ServedLevel | None:
        """The served level at a concurrency, if measured."""
        return next((lv for lv in self.served if lv.concurrency == concurrency), None)

    @staticmethod
    def step_compute_ms(level: ServedLevel) -> dict[str, float]:
        """Per-image compute milliseconds of each of the four steps measured at a level."""
        return {m: level.models[m].compute_ms_per_image for m in STEP_MODELS if m in level.models}

    def step_shares(self, level: ServedLevel) -> dict[str, float]:
        """Each step's share of the summed per-image compute time of the four steps."""
        compute = self.step_compute_ms(level)
        total = sum(compute.values())
        return {m: (v / total if total else 0.0) for m, v in compute.items()}

    def decode_floor(self) -> tuple[float, float] | None:
        """(JPEG decode ms per image, its share of the c=1 compute): the floor under ``prepare``'s share."""
        ref = self.level(1)
        if ref is None or not self.inprocess.decode_ms:
            return None
        total = sum(self.step_compute_ms(ref).values())
        return self.inprocess.decode_ms, (self.inprocess.decode_ms / total if total else 0.0)

    def triage_cost(self) -> tuple[dict[str, float], float] | None:
        """(milliseconds per image of each part the triage outputs add, their sum over the served c=1 p50):
        the served triage step's compute, and in-process the quality measures and the classifier's OOD + CAM."""
        c1 = self.level(1)
        if c1 is None or not self.inprocess.triage_extras_ms:
            return None
        step = c1.models.get(TRIAGE_MODEL)
        parts = {**self.inprocess.triage_extras_ms, "triage step": step.compute_ms_per_image if step else 0.0}
        return parts, sum(parts.values()) / c1.latency.p50_ms

    def targets(self) -> list[Target]:
        """The issue's targets, evaluated on this run."""
        base = self.inprocess.latency
        out: list[Target] = []
        c4 = self.level(THROUGHPUT_TARGET_C)
        if c4 is not None:
            ratio = c4.latency.images_per_s / base.images_per_s
            out.append(Target(f"served images/s at c={THROUGHPUT_TARGET_C} / in-process", ratio, THROUGHPUT_TARGET,
                              ratio >= THROUGHPUT_TARGET))
        c1 = self.level(1)
        if c1 is not None:
            ratio = c1.latency.p50_ms / base.p50_ms
            out.append(Target("served p50 at c=1 / in-process p50", ratio, P50_TARGET, ratio <= P50_TARGET))
        # Shares at c=1: each step's compute is then timed without the other steps competing for the
        # same cores (at c>=4 every step's wall-clock compute is inflated by the others).
        ref = c1 or c4
        if ref is not None:
            shares = self.step_shares(ref)
            for model in (PREPARE_MODEL, CROP_MODEL):
                share = shares.get(model, 0.0)
                out.append(Target(f"{model} share of compute (c={ref.concurrency})", share, STEP_SHARE_TARGET,
                                  share < STEP_SHARE_TARGET))
        cost = self.triage_cost()
        if cost is not None:
            out.append(Target("triage outputs' cost / served p50 at c=1", cost[1], TRIAGE_COST_TARGET,
                              cost[1] <= TRIAGE_COST_TARGET))
        return out

    def markdown(self) -> str:
        """The report as markdown tables."""
        base = self.inprocess.latency
        lines = [
            f"# dermassist bench\n\nRun started {self.started_utc or 'at an unrecorded time'}. Settings: "
            f"{self.settings or 'not recorded'}.\nMachine: {self.machine}. Models: {self.models}. Corpus: {self.corpus}.",
            self._load_line(),
            *([f"**Incomplete: the run stopped** ({self.stopped}); below are the figures measured before it.\n"]
              if self.stopped else []),
            "All figures come from this one run; the ratios compare measurements taken minutes apart on the same machine.\n",
            "| path | concurrency | n | images/s | p50 ms | p95 ms | p99 ms | images/s vs in-process | p50 vs in-process |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| in-process (batch 1, sequential) | 1 | {_latency_cells(base)} | 1.00x | 1.00x |",
        ]
        for lv in self.served:
            s = lv.latency
            lines.append(f"| served gRPC (ours) | {lv.concurrency} | {_latency_cells(s)} | "
                         f"{s.images_per_s / base.images_per_s:.2f}x | {s.p50_ms / base.p50_ms:.2f}x |")
        for row in self.perf_analyzer:
            lines.append(f"| perf_analyzer | {row.concurrency} | - | {row.throughput:.2f} | {row.p50_ms:.1f} | {row.p95_ms:.1f} "
                         f"| {row.p99_ms:.1f} | "
                         f"{row.throughput / base.images_per_s:.2f}x | {row.p50_ms / base.p50_ms:.2f}x |")
        lines.append("\nn: requests timed at the level (perf_analyzer times windows until they agree). "
                     + thin_footnote())
        if self.perf_analyzer_note:
            lines.append(f"\nperf_analyzer: {self.perf_analyzer_note}")
        lines += self._front_lines()
        lines += ["\n## Per-step time per image (ms)\n",
                  "| step | in-process | "
                  + " | ".join(f"served c={lv.concurrency} compute / queue / batch / share" for lv in self.served) + " |",
                  "|---|---|" + "---|" * len(self.served)]
        for model in STEP_MODELS:
            cells = [f"{self.inprocess.step_ms.get(model, 0.0):.1f}"]
            for lv in self.served:
                st = lv.models.get(model)
                share = self.step_shares(lv).get(model, 0.0)
                cells.append("n/a" if st is None else
                             f"{st.compute_ms_per_image:.1f} / {st.per_image_ms('queue'):.1f} / {st.mean_batch:.1f} "
                             f"/ {share:.0%}")
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines += self._cpu_lines()
        lines += ["\n## Targets (issues 5 and 10)\n", "| target | value | limit | met |", "|---|---|---|---|"]
        for t in self.targets():
            lines.append(f"| {t.name} | {t.value:.3f} | {t.limit:.2f} | {'yes' if t.met else 'NO'} |")
        cost = self.triage_cost()
        if cost is not None:
            lines.append("\nTriage outputs' cost per image: " + ", ".join(f"{k} {v:.2f} ms" for k, v in cost[0].items())
                         + f" = {cost[1]:.1%} of the served c=1 p50.")
        floor = self.decode_floor()
        if floor is not None:
            lines.append(f"\nFloor under the {PREPARE_MODEL} share: decoding the corpus alone, as {PREPARE_MODEL} does "
                         f"(same shrink-on-load, one core, in-process), takes {floor[0]:.2f} ms per image, "
                         f"{floor[1]:.1%} of the c=1 compute.")
        return "\n".join(lines) + "\n"

    def _front_lines(self) -> list[str]:
        """What the guard's front adds at each level (and over TLS at c=1): p50 and p95 each way, added ms, ratios."""
        if self.front is None:
            return []
        lines = ["\n## What the guard's gRPC front adds (`dermassist serve`: audit line, truthful readiness)\n",
                 f"Each row: requests straight to Triton ({DIRECT_PATH}) and through the front, sent in pairs by "
                 "`concurrency` threads, the order swapped every pair, so both paths see the same machine state; at "
                 "concurrency c, c requests are in flight, about half on each path. Connections are opened before "
                 "timing: the figures are per request on a kept-open connection, without the TCP or TLS handshake. "
                 "Ratios from this one run only.\n",
                 "| front port | concurrency | requests each way | direct p50 ms | front p50 ms | added p50 ms | p50 ratio "
                 "| direct p95 ms | front p95 ms | added p95 ms | p95 ratio |",
                 "|---|---|---|---|---|---|---|---|---|---|---|"]
        lines += [front_table_row(row) for row in self.front.rows]
        lines.append("\n" + thin_footnote())
        lines.append(f"\nTLS row: {self.front.tls_note or 'not measured'}." + (
            " It is measured after the plaintext rows, against direct samples of its own: compare its added ms and "
            "ratio with the plaintext c=1 row's, not its milliseconds." if self.front.tls is not None else ""))
        return lines

    def _cpu_lines(self) -> list[str]:
        """The CPU time per image of the server's processes at each level, and what one core sustains."""
        levels = [lv for lv in self.served if lv.cpu_ms]
        if not levels:
            return ["\nCPU per image: not read (no /proc, or no server pid)."]
        names = [SERVER, *(m for m in STEP_MODELS if any(m in lv.cpu_ms for lv in levels))]
        names += sorted({n for lv in levels for n in lv.cpu_ms} - {*names, "total"})
        lines = ["\n## CPU per image (ms of CPU time, every thread of the process)\n",
                 "What sizes a host's cores: on a GPU host the Python steps and tritonserver's own threads still run on "
                 "the CPU.\n",
                 "| process | " + " | ".join(f"c={lv.concurrency}" for lv in levels) + " |",
                 "|---|" + "---|" * len(levels)]
        for name in (*names, "total"):
            lines.append(f"| {name} | " + " | ".join(f"{lv.cpu_ms[name]:.1f}" if name in lv.cpu_ms else "n/a"
                                                    for lv in levels) + " |")
        lines.append("| images/s one core sustains (1000 / total) | "
                     + " | ".join(f"{1000.0 / lv.cpu_ms['total']:.1f}" if lv.cpu_ms["total"] > 0 else "n/a"
                                  for lv in levels) + " |")
        return lines

    def _load_line(self) -> str:
        """The machine's load around the run: a busy machine slows every figure, not only one path."""
        if self.load_average is None:
            return "Load average: not recorded."
        before, after = self.load_average
        cores = os.cpu_count() or 1
        busy = " (more runnable work than cores: other work shared the machine)" if max(before, after) > cores else ""
        return f"Load average (1 min) before / after the run: {before:.2f} / {after:.2f} on {cores} cores{busy}."

    def to_json(self) -> dict:
        """A JSON-ready dict of the run."""
        return {
            "started_utc": self.started_utc, "settings": self.settings, "stopped": self.stopped,
            "machine": self.machine, "models": self.models, "corpus": self.corpus,
            "load_average": None if self.load_average is None else list(self.load_average),
            "inprocess": asdict(self.inprocess),
            "served": [{"concurrency": lv.concurrency, "latency": asdict(lv.latency),
                        "models": {m: {**asdict(s), "compute_ms_per_image": s.compute_ms_per_image,
                                       "queue_ms_per_image": s.per_image_ms("queue"), "mean_batch": s.mean_batch}
                                   for m, s in lv.models.items()},
                        "step_shares": self.step_shares(lv), "cpu_ms_per_image": lv.cpu_ms} for lv in self.served],
            "perf_analyzer": [asdict(r) for r in self.perf_analyzer],
            "perf_analyzer_note": self.perf_analyzer_note,
            "front": None if self.front is None else front_json(self.front),
            "targets": [asdict(t) for t in self.targets()],
            "triage_cost": None if (cost := self.triage_cost()) is None
            else {"ms_per_image": cost[0], "share_of_p50_c1": cost[1]},
            "decode_floor": None if (floor := self.decode_floor()) is None else {"ms_per_image": floor[0], "share_c1": floor[1]},
        }

    def write(self, report_dir: Path) -> tuple[Path, Path]:
        """Write latest.md and latest.json; return their paths."""
        report_dir = Path(report_dir)
        report_dir.mkdir(parents=True, exist_ok=True)
        md, js = report_dir / "latest.md", report_dir / "latest.json"
        md.write_text(self.markdown())
        js.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")
        return md, js


def _latency_cells(s: LatencySummary) -> str:
    """The n, images/s, p50, p95 and p99 cells of one main-table row (a percentile from too few samples marked)."""
    return (f"{'-' if s.samples is None else s.samples} | {s.images_per_s:.2f} | {s.p50_ms:.1f} "
            f"| {percentile_cell(s.p95_ms, 95, s.samples, '.1f')} | {percentile_cell(s.p99_ms, 99, s.samples, '.1f')}")


def front_table_row(row: FrontCost) -> str:
    """One markdown row of the front's table (added milliseconds signed: the front can come out faster in noise; a p95
    from fewer requests than it needs marked)."""
    p95 = [percentile_cell(v, 95, row.requests, ".1f") for v in (row.direct_p95_ms, row.front_p95_ms)]
    return (f"| {'TLS' if row.tls else 'plaintext'} | {row.concurrency} | {row.requests} | {row.direct_p50_ms:.1f} "
            f"| {row.front_p50_ms:.1f} | {row.added_ms:+.2f} | {row.ratio:.3f}x | {p95[0]} "
            f"| {p95[1]} | {row.added_p95_ms:+.2f} | {row.ratio_p95:.3f}x |")


def front_json(front: FrontCosts) -> dict:
    """The front's rows for latest.json: every measured figure and the derived added ms and ratios."""
    return {"direct_path": DIRECT_PATH, "tls_note": front.tls_note,
            "rows": [{**asdict(row), "added_ms": row.added_ms, "ratio": row.ratio, "added_p95_ms": row.added_p95_ms,
                      "ratio_p95": row.ratio_p95} for row in front.rows]}


def load_average() -> float:
    """The machine's 1-minute load average (NaN where the system does not tell it)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def machine_description() -> str:
    """CPU model, core count and OS, for the report header."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
