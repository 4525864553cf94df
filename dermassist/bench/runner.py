"""The benchmark sequence: corpus -> in-process reference -> embedded server -> served levels -> the guard's front
(each level, then TLS at c=1) -> perf_analyzer."""
from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path

from ..base.corpus import SIZES, CorpusSpec, load_corpus
from ..base.errors import DermAssistError
from ..base.repository import require_artifacts, served_models
from .config import BenchConfig
from .errors import BenchConfigError, BenchError, PerfAnalyzerUnavailable
from .front import FrontCosts, measure_behind_guard
from .inprocess import measure_inprocess
from .perf_analyzer import PerfAnalyzerRow
from .report import BenchResult, load_average, machine_description
from .served import CALL_TIMEOUT_S, ServedLevel, measure_level, warm_up

logger = logging.getLogger(__name__)


def prepare_report_dir(report_dir: Path) -> None:
    """Make the report folder, or a BenchConfigError naming it, why and the fix (told before minutes of measuring)."""
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        reason = e.strerror or str(e)
    else:
        if os.access(report_dir, os.W_OK | os.X_OK):
            return
        reason = "not writable"
    raise BenchConfigError(f"report_dir {report_dir} cannot be made a folder the reports are written to ({reason}); "
                           "pass another --report-dir / DERMASSIST_BENCH_REPORT_DIR")


def run_bench(config: BenchConfig) -> BenchResult:
    """Measure the in-process pipeline, then the served ensemble, on one image corpus."""
    prepare_report_dir(config.report_dir)  # the reports are written after minutes of measuring
    load_before = load_average()
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    settings = (f"concurrencies {', '.join(map(str, config.concurrencies))}; {config.requests_per_level} requests per "
                f"level; warm-up {config.warmup}; {config.inprocess_passes} in-process passes; {config.per_size} images "
                "per size")
    require_artifacts(config.repository, BenchError)  # before the corpus is built
    images = load_corpus(CorpusSpec(per_size=config.per_size))
    inprocess = measure_inprocess(config.repository, images, config.inprocess_passes, config.warmup,
                                  config.inprocess_torch_threads)
    corpus = (f"{len(images)} JPEGs, {config.per_size} each of " + ", ".join(f"{w}x{h}" for w, h in SIZES)
              + f" (in-process classifier: {inprocess.settings})")

    from ..base.server import embedded_server

    warn_overload(config.concurrencies, inprocess.latency.p50_ms)
    served: list[ServedLevel] = []

    def result(pa_rows: list[PerfAnalyzerRow], note: str, front: FrontCosts | None, stopped: str = "") -> BenchResult:
        """The run's result from what it measured so far (the load average read as it ends)."""
        return BenchResult(machine_description(), corpus, inprocess, served, pa_rows, note, front,
                           served_models(config.repository), (load_before, load_average()), started, settings, stopped)

    with embedded_server(config.repository) as server:
        address = server.config.grpc_address
        admin = server.config.grpc_admin_headers
        warm_up(address, images, config.warmup, admin)
        try:
            for c in config.concurrencies:
                served.append(measure_level(address, images, c, config.requests_per_level, admin, server.pid))
            front = measure_behind_guard(server, images, config.concurrencies, config.requests_per_level,
                                         config.report_dir)
        except DermAssistError as e:  # a level's failure or the guard's: the levels measured are written, not lost
            md, _ = result([], "not run: the bench stopped", None, stopped=str(e)).write(config.report_dir)
            raise BenchError(f"{e}; the in-process figures and the {len(served)} served level(s) measured before it are "
                             f"written to {md}") from e
        pa_rows: list[PerfAnalyzerRow] = []
        note = ""
        if config.perf_analyzer:
            from .perf_analyzer import STABILITY_PERCENT, ensure_perf_analyzer, run_perf_analyzer

            try:
                install = ensure_perf_analyzer(config.tools_dir)
                levels = [c for c in config.concurrencies if c in (1, 4)] or list(config.concurrencies[:1])
                pa_rows = run_perf_analyzer(install, address, images, config.report_dir, levels,
                                            config.perf_analyzer_window_ms, admin)
                note = (f"tritonclient {install.binary.parent.name}, gRPC, batch 1, same corpus, "
                        f"{config.perf_analyzer_window_ms} ms windows, stability relaxed to {STABILITY_PERCENT}% "
                        "(shared machine); "
                        "it requests every output (CROP too)")
            except (PerfAnalyzerUnavailable, OSError) as e:
                note = f"not run: {e}"
                logger.warning("perf_analyzer skipped: %s", e)
        else:
            note = "not run (--no-perf-analyzer)"
    return result(pa_rows, note, front)


def warn_overload(concurrencies: tuple[int, ...], inprocess_p50_ms: float) -> None:
    """Warn of a level whose calls would queue past their timeout: c calls in flight, each about the in-process p50
    of this machine, leave the last waiting about c x p50 (a GPU host serves faster than this estimate)."""
    for c in concurrencies:
        wait_s = c * inprocess_p50_ms / 1000.0
        if wait_s > CALL_TIMEOUT_S:
            logger.warning("concurrency %d: %d calls in flight at about %.0f ms each (the in-process p50 here) leave the "
                           "last waiting about %.0f s, past the %.0f s call timeout: expect that level to fail with "
                           "Deadline Exceeded; measure fewer concurrent calls (--concurrency)", c, c, inprocess_p50_ms,
                           wait_s, CALL_TIMEOUT_S)
