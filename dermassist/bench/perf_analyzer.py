"""NVIDIA perf_analyzer on the ensemble: set up from the tritonclient 2.51.0 wheel, run, parse its CSV.

The PyPI ``perf-analyzer`` wheels need glibc 2.38; the binary inside ``tritonclient==2.51.0`` runs
on this glibc once ``libb64.so.0d`` and ``libcudart.so.12`` resolve (symlinks to the copies in the
nvidia-pytriton wheel). The wheel is unpacked into the git-ignored ``tools/`` folder, never
installed into the project venv (it pins protobuf<5).

``python -m dermassist.bench.perf_analyzer TOOLS_DIR`` only does the set-up (for a Makefile target).
"""
from __future__ import annotations

import base64
import csv
import json
import logging
import os
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from preprocess.contract import ENSEMBLE_NAME, IMAGE

from ..base.bytes_tensor import encode
from .errors import PerfAnalyzerUnavailable

logger = logging.getLogger(__name__)

WHEEL_VERSION = "2.51.0"
WHEEL_BIN = f"tritonclient-{WHEEL_VERSION}.data/data/bin/perf_analyzer"
# Loose on purpose: on a shared 2-core machine windows differ by far more than the default 10%.
STABILITY_PERCENT = 500
LIB_PATTERNS = {"libb64.so.0d": "libb64-*.so.0d", "libcudart.so.12": "libcudart-*.so.12*"}


@dataclass(frozen=True)
class PerfAnalyzerInstall:
    """The unpacked binary and the folder holding the libraries it needs."""

    binary: Path
    lib_dir: Path

    def environment(self) -> dict[str, str]:
        """Environment in which the binary finds its libraries."""
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(self.lib_dir), env.get("LD_LIBRARY_PATH", "")) if p)
        return env


@dataclass(frozen=True)
class PerfAnalyzerRow:
    """One concurrency level as perf_analyzer measured it (latencies in milliseconds)."""

    concurrency: int
    throughput: float  # inferences (images) per second
    p50_ms: float
    p95_ms: float
    p99_ms: float
    avg_ms: float


def _pytriton_libs() -> Path:
    from ..base.errors import ServerError
    from ..base.server import locate_triton

    try:
        libs = locate_triton().libs
    except ServerError as e:
        raise PerfAnalyzerUnavailable(f"{e}; its libb64/libcudart copies are needed") from e
    if libs is None:  # not reached: locate_triton() without a home is the wheel, which has its libraries
        raise PerfAnalyzerUnavailable("the nvidia-pytriton wheel's libraries (libb64, libcudart) were not found")
    return libs


def _downloaded_wheel(wheels: Path) -> Path | None:
    """The tritonclient wheel carrying perf_analyzer in ``wheels``, if one was downloaded."""
    return next(iter(sorted(wheels.glob(f"tritonclient-{WHEEL_VERSION}-*manylinux*x86_64.whl"))), None)


def ensure_perf_analyzer(tools_dir: Path) -> PerfAnalyzerInstall:
    """Download (pip download --no-deps), unpack and link perf_analyzer under ``tools_dir`` if needed."""
    root = Path(tools_dir) / f"perf_analyzer-{WHEEL_VERSION}"
    install = PerfAnalyzerInstall(root / "perf_analyzer", root / "lib")
    if install.binary.exists() and all((install.lib_dir / n).exists() for n in LIB_PATTERNS):
        return install
    wheels = Path(tools_dir) / "wheels"
    wheel = _downloaded_wheel(wheels)
    if wheel is None:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--platform", "manylinux1_x86_64", f"tritonclient=={WHEEL_VERSION}", "-d", str(wheels)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheel = _downloaded_wheel(wheels)
        if done.returncode != 0 or wheel is None:
            raise PerfAnalyzerUnavailable(
                f"could not download tritonclient=={WHEEL_VERSION} (needed for perf_analyzer): {done.stderr.strip()[-300:]}")
    install.lib_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        try:
            data = zf.read(WHEEL_BIN)
        except KeyError as e:
            raise PerfAnalyzerUnavailable(f"{wheel.name} has no {WHEEL_BIN}") from e
    tmp = install.binary.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    tmp.replace(install.binary)
    libs = _pytriton_libs()
    for name, pattern in LIB_PATTERNS.items():
        found = sorted(libs.glob(pattern))
        if not found:
            raise PerfAnalyzerUnavailable(f"no {pattern} in {libs}; perf_analyzer needs {name}")
        link = install.lib_dir / name
        link.unlink(missing_ok=True)
        link.symlink_to(found[0])
    logger.info("perf_analyzer %s set up in %s", WHEEL_VERSION, root)
    return install


def write_input_data(images: Sequence[bytes], path: Path) -> Path:
    """perf_analyzer's real-input JSON: one entry per image. perf_analyzer sends decoded ``b64`` content as
    the raw tensor, so each entry is a serialised one-element BYTES tensor (uint32 LE length + bytes)."""
    entries = [{IMAGE.name: {"b64": base64.b64encode(encode([b])).decode("ascii")}} for b in images]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": entries}))
    return path


def parse_csv(path: Path) -> list[PerfAnalyzerRow]:
    """Rows of perf_analyzer's ``-f`` CSV (latencies there are microseconds)."""
    rows = []
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            rows.append(PerfAnalyzerRow(
                concurrency=int(row["Concurrency"]), throughput=float(row["Inferences/Second"]),
                p50_ms=float(row["p50 latency"]) / 1000.0, p95_ms=float(row["p95 latency"]) / 1000.0,
                p99_ms=float(row["p99 latency"]) / 1000.0,
                avg_ms=(sum(float(row[k]) for k in ("Client Send", "Network+Server Send/Recv", "Server Queue",
                        "Server Compute Input", "Server Compute Infer", "Server Compute Output", "Client Recv")
                        if k in row) / 1000.0),
            ))
    return rows


def run_perf_analyzer(install: PerfAnalyzerInstall, address: str, images: Sequence[bytes], work_dir: Path,
                      concurrencies: Sequence[int], window_ms: int,
                      headers: dict[str, str] | None = None) -> list[PerfAnalyzerRow]:
    """Measure the ensemble at each concurrency; raise PerfAnalyzerUnavailable if it fails.

    perf_analyzer reads the model config and the statistics, which sit behind the admin key:
    ``headers`` (the key's gRPC header) go with every call through ``-H`` (2.51 sends them on gRPC too,
    whatever its help says).
    """
    data = write_input_data(images, Path(work_dir) / "perf_analyzer_input.json")
    rows: list[PerfAnalyzerRow] = []
    for c in concurrencies:
        out = Path(work_dir) / f"perf_analyzer_c{c}.csv"
        cmd = [str(install.binary), "-m", ENSEMBLE_NAME, "-u", address, "-i", "grpc", "--input-data", str(data),
               "--shape", f"{IMAGE.name}:1", "--concurrency-range", f"{c}:{c}", "--measurement-interval",
               str(window_ms), "--max-trials", "3", "--stability-percentage", str(STABILITY_PERCENT), "-f", str(out)]
        for name, value in (headers or {}).items():
            cmd += ["-H", f"{name}:{value}"]
        done = subprocess.run(cmd, env=install.environment(), capture_output=True, text=True, timeout=300)
        (Path(work_dir) / f"perf_analyzer_c{c}.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0 or not out.exists():
            raise PerfAnalyzerUnavailable(
                f"perf_analyzer exited with {done.returncode} at concurrency {c}: {(done.stdout + done.stderr).strip()[-400:]}")
        rows.extend(parse_csv(out))
    return rows


def main(argv: list[str]) -> int:
    """Set up perf_analyzer under the given tools folder and print its path."""
    import argparse

    from ..base.logs import configure_logging
    from .config import BenchConfig

    parser = argparse.ArgumentParser(prog="python -m dermassist.bench.perf_analyzer",
                                     description="install perf_analyzer (tritonclient's wheel from PyPI) and print its path")
    parser.add_argument("tools", nargs="?", type=Path, default=BenchConfig.tools_dir,
                        help=f"folder it is installed under (default {BenchConfig.tools_dir})")
    tools = parser.parse_args(argv).tools
    configure_logging()
    try:
        install = ensure_perf_analyzer(tools)
    except PerfAnalyzerUnavailable as e:
        logging.getLogger(__name__).error("%s", e)
        return 2
    print(install.binary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
