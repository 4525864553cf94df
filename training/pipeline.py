"""``make models``: synthetic data -> segmenter -> classifier -> export -> ``reports/latest/metrics.json``.

The segmenter (TensorFlow) and classifier (PyTorch) stages run as their own subprocesses. A stage
is skipped when its outputs exist and its fingerprint (settings + training/preprocess source) is
unchanged, so a second run only checks and rewrites the report.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from dermassist.repository import PROJECT_ROOT, SOURCE_REPOSITORY, classifier_artifact, labels_file, segmenter_artifact

from .classifier.schedule import low_res_epochs_for
from .errors import StageError, TrainingConfigError
from .synth.generator import HAM_DIR, ISIC2018_DIR, SynthConfig, generate, read_manifest
from .synth.grid import sample_grid

logger = logging.getLogger(__name__)

STATE_FILE = "build_state.json"
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class PipelineConfig:
    """Where things go and the schedule of each stage; validated on construction."""

    data_dir: Path = PROJECT_ROOT / "data" / "synthetic"
    runs_dir: Path = PROJECT_ROOT / "data" / "runs"
    reports_dir: Path = PROJECT_ROOT / "reports" / "latest"
    repository: Path = SOURCE_REPOSITORY
    count: int = 1600
    seed: int = 0
    seg_width: float = 0.25
    seg_epochs: int = 5
    seg_max_train_images: int = 0
    cls_epochs: int = 6
    cls_low_res_epochs: int = 4
    cls_low_res: int = 112
    force: bool = False

    def __post_init__(self) -> None:
        if self.count < 100:
            raise TrainingConfigError(f"make models needs at least 100 synthetic images to split, got {self.count}")
        if self.seg_epochs < 1 or self.cls_epochs < 1:
            raise TrainingConfigError(f"epochs must be >= 1, got seg {self.seg_epochs}, cls {self.cls_epochs}")


NOT_MODEL_CODE = ("pipeline.py", "experiments.py", "importer.py")


def source_digest(stage: str) -> str:
    """Hash of the sources a stage's output depends on: ``preprocess``, the shared ``training`` modules
    and the stage's own package; a change there invalidates that stage's output."""
    h = hashlib.sha256()
    paths = sorted((PROJECT_ROOT / "preprocess").rglob("*.py"))
    training = PROJECT_ROOT / "training"
    paths += sorted(p for p in training.glob("*.py") if p.name not in NOT_MODEL_CODE)
    paths += sorted(p for p in training.rglob("*.py") if p.parent.name == stage)
    for path in paths:
        h.update(path.relative_to(PROJECT_ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _load_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run_stage(module: str, args: list[str], log_path: Path) -> float:
    """Run ``python -m <module> <args>`` in its own process, streaming its output to a log; returns seconds."""
    cmd = [sys.executable, "-m", module, *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    logger.info("stage %s: %s (log %s)", module, " ".join(args), log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=25)
    start = time.perf_counter()
    with log_path.open("w") as log, subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            tail.append(line.rstrip())
            if "WARNING" not in line and "oneDNN" not in line:
                sys.stderr.write(line)
        code = proc.wait()
    if code != 0:
        raise StageError(f"stage {module} exited with {code}; see {log_path}. Last lines:\n" + "\n".join(tail))
    return time.perf_counter() - start


def _stage_needed(name: str, state: dict, fingerprint: str, outputs: list[Path], force: bool) -> bool:
    if force:
        return True
    if state.get(name, {}).get("fingerprint") != fingerprint:
        return True
    return not all(p.exists() for p in outputs)


def build_models(config: PipelineConfig = PipelineConfig()) -> dict:
    """Run every stage that needs it and write ``metrics.json``; returns the metrics."""
    start = time.perf_counter()
    reports, runs, repo = Path(config.reports_dir), Path(config.runs_dir), Path(config.repository)
    reports.mkdir(parents=True, exist_ok=True)
    state_path = runs / STATE_FILE
    state = _load_state(state_path)
    timings: dict[str, float] = {}

    synth_cfg = SynthConfig(count=config.count, seed=config.seed)
    synth_fp = _fingerprint(asdict(synth_cfg), source_digest("synth"))
    if _stage_needed("synth", state, synth_fp, [config.data_dir / HAM_DIR, config.data_dir / ISIC2018_DIR], config.force) \
            or read_manifest(config.data_dir) is None:
        shutil.rmtree(config.data_dir, ignore_errors=True)
        t = time.perf_counter()
        result = generate(config.data_dir, synth_cfg, progress=sys.stderr.isatty())
        sample_grid(reports / "synthetic_samples.png", seed=config.seed)
        timings["synth"] = round(time.perf_counter() - t, 1)
        state["synth"] = {"fingerprint": synth_fp, "seconds": timings["synth"],
                          "images_per_second": round(result.images_per_second, 1)}
        _save(state_path, state)
    seg_dir, cls_dir = runs / "segmenter", runs / "classifier"
    seg_args = ["--data", str(config.data_dir / ISIC2018_DIR), "--out", str(seg_dir), "--repository", str(repo),
                "--width", str(config.seg_width), "--epochs", str(config.seg_epochs), "--seed", str(config.seed),
                "--max-train-images", str(config.seg_max_train_images)]
    seg_fp = _fingerprint(seg_args, synth_fp, source_digest("segmenter"))
    if _stage_needed("segmenter", state, seg_fp, [seg_dir / "segmenter_metrics.json", segmenter_artifact(repo)], config.force):
        timings["segmenter"] = round(run_stage("training.segmenter.stage", seg_args, seg_dir / "stage.log"), 1)
        state["segmenter"] = {"fingerprint": seg_fp, "seconds": timings["segmenter"]}
        _save(state_path, state)
    cls_args = ["--data", str(config.data_dir / HAM_DIR), "--out", str(cls_dir), "--repository", str(repo),
                "--epochs", str(config.cls_epochs), "--low-res-epochs", str(low_res_epochs_for(config.cls_epochs, config.cls_low_res_epochs)),
                "--low-res", str(config.cls_low_res),
                "--seed", str(config.seed)]
    cls_fp = _fingerprint(cls_args, synth_fp, source_digest("classifier"))
    if _stage_needed("classifier", state, cls_fp,
                     [cls_dir / "classifier_metrics.json", classifier_artifact(repo), labels_file(repo)], config.force):
        timings["classifier"] = round(run_stage("training.classifier.stage", cls_args, cls_dir / "stage.log"), 1)
        state["classifier"] = {"fingerprint": cls_fp, "seconds": timings["classifier"]}
        _save(state_path, state)
    metrics = write_metrics(config, state, timings, time.perf_counter() - start)
    return metrics


def _save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=1))


def write_metrics(config: PipelineConfig, state: dict, timings: dict[str, float], seconds: float) -> dict:
    """Combine the stage reports into ``reports/latest/metrics.json`` and copy their PNGs beside it."""
    runs, reports = Path(config.runs_dir), Path(config.reports_dir)
    seg = json.loads((runs / "segmenter" / "segmenter_metrics.json").read_text())
    cls = json.loads((runs / "classifier" / "classifier_metrics.json").read_text())
    for png in [*(runs / "segmenter").glob("*.png"), *(runs / "classifier").glob("*.png")]:
        shutil.copy2(png, reports / png.name)
    metrics = {
        "segmentation": {
            "val": seg["val"],
            "threshold": seg["threshold"],
            "default_threshold": seg["default_threshold"],
            "val_at_default": seg["val_at_default"],
            **({"test": seg["test"]} if "test" in seg else {}),
            "params": seg["params"],
            "export": seg.get("export"),
        },
        "classification": {
            "test": dict(cls["test"]),
            "best_epoch": cls.get("best_epoch"),
            "export": cls.get("export"),
        },
        "dataset": {
            "synthetic": read_manifest(config.data_dir),
            "segmentation": seg["dataset"],
            "classification": {**cls["dataset"], "splits": cls.get("splits")},
        },
        "timings_seconds": {
            "this_run": {**timings, "total": round(seconds, 1)},
            "last_build": {k: v.get("seconds") for k, v in state.items() if isinstance(v, dict)},
        },
        "repository": str(config.repository),
    }
    (reports / METRICS_FILE).write_text(json.dumps(metrics, indent=1))
    logger.info(
        "metrics: segmentation val dice %.3f (thr %.2f), classification test macro F1 %.3f -> %s",
        seg["val"]["dice"], seg["threshold"], cls["test"]["macro_f1"], reports / METRICS_FILE,
    )
    return metrics


def with_overrides(config: PipelineConfig, **overrides: object) -> PipelineConfig:
    """A copy of ``config`` with the non-None overrides applied."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
