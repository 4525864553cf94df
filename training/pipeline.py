"""The release pipeline and ``make models``.

``build_release``: data -> segmenter stage -> classifier stage (on crops cut at the segmenter's tuned
threshold from its predicted masks, as served) -> a release folder: float16 weights, ``release.json``
with the recipe, tuned values and figures, and the split manifests. Each stage runs as its own
subprocess (TensorFlow and PyTorch never share one) and is skipped when its outputs exist and its
recipe, data and code are unchanged, so an interrupted build resumes; a stage stopped after an epoch continues from
its resumable checkpoint (``--resume``) when its recipe, data and code are those it started with.

``export_release``: a release -> the served model repository, in seconds.
``metrics_from_release``: the release's figures -> ``reports/latest/metrics.json``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dermassist.base.frameworks import framework_env
from dermassist.base.paths import PROJECT_ROOT, SHARED_DATA
from dermassist.base.repository import file_sha256
from dermassist.base.settings import Settings, flag_name

from .child import run_child
from .errors import StageError, TrainingConfigError, TrainingError
from .masks_record import MASKS_RECORD, record_masks
from .release import (
    CLASSIFIER_WEIGHTS,
    MANIFEST,
    SEGMENTER_WEIGHTS,
    ReleaseError,
    read_manifest,
    read_release,
    update_release,
    write_json_atomic,
)
from .resume import CLASSIFIER_CHECKPOINT, SEGMENTER_CHECKPOINT
from .seen_pictures import write_seen_pictures
from .signals import on_sigterm

logger = logging.getLogger(__name__)

STATE_FILE = "build_state.json"
METRICS_FILE = "metrics.json"
RELEASE_VERSION = "1"
RELEASE_NAME = "dermassist-real-2026.12"
#: After a Ctrl-C of the build: how long its stage is given to stop by itself (a terminal's Ctrl-C reached it too), then
#: how long to save what it reached once told (SIGTERM) before it is killed.
STAGE_GRACE_S = 2.0
STAGE_SAVE_S = 300.0


@dataclass(frozen=True)
class Recipe:
    """Which dataset folders (under ``--data``) each stage reads and the flags it runs with."""

    seg_data: str
    seg_extra: tuple[str, ...]
    cls_data: tuple[str, ...]
    seg_args: tuple[str, ...]
    cls_args: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.seg_data, str) or not self.seg_data:
            raise TrainingConfigError(f"recipe seg_data must be a dataset folder name, got {self.seg_data!r}")
        for name in ("seg_extra", "cls_data", "seg_args", "cls_args"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                raise TrainingConfigError(f"recipe {name} must be a list of strings (e.g. [\"--epochs\", \"100\"]), "
                                          f"got {value!r}")
        if not self.cls_data:
            raise TrainingConfigError("a recipe needs at least one classification dataset (cls_data)")

    @classmethod
    def from_dict(cls, values: dict) -> Recipe:
        """The recipe recorded in a release.json (each list a JSON list: a string is not split into characters)."""
        if not isinstance(values, dict):
            raise ReleaseError(f"a recipe must be a JSON object with seg_data, seg_extra, cls_data, seg_args and "
                               f"cls_args, got {type(values).__name__}")
        try:
            lists = {k: values[k] for k in ("seg_extra", "cls_data", "seg_args", "cls_args")}
            seg_data = values["seg_data"]
        except KeyError as e:
            raise ReleaseError(f"release recipe {values!r} lacks {e}; expected seg_data, seg_extra, cls_data, "
                               "seg_args and cls_args") from e
        wrong = [k for k, v in lists.items() if not isinstance(v, list)]
        if wrong:
            raise ReleaseError(f"recipe {', '.join(wrong)} must be JSON lists of strings, got "
                               f"{', '.join(repr(lists[k]) for k in wrong)}")
        return cls(seg_data, *(tuple(lists[k]) for k in ("seg_extra", "cls_data", "seg_args", "cls_args")))


# The recipe of the shipped release: ISIC 2017 Training + PH2 for the UNet (ISIC 2017 Validation is its
# validation set), ISIC 2018 Task 3 + PH2 for the classifier; the evaluation-only samples are never read.
REAL_RECIPE = Recipe(
    seg_data="isic2017_seg_256",
    seg_extra=("ph2",),
    cls_data=("isic2018_task3", "ph2"),
    seg_args=("--depth", "18", "--width", "0.5", "--epochs", "100", "--warmup-epochs", "2", "--lr", "2e-3",
              "--mixed-precision", "--seed", "0"),
    cls_args=("--epochs", "150", "--low-res-epochs", "60", "--low-res", "160", "--lr", "2e-3", "--warmup-epochs", "3",
              "--balance", "0.7", "--dropout", "0.2", "--ema", "0.998", "--label-smoothing", "0.1", "--seed", "0"),
)
# A few-minute recipe on the synthetic set (`dermassist synth`), for machines without the real data.
SYNTHETIC_RECIPE = Recipe(
    seg_data="isic2018", seg_extra=(), cls_data=("ham10000",),
    seg_args=("--width", "0.25", "--epochs", "5", "--seed", "0"),
    cls_args=("--epochs", "6", "--low-res-epochs", "4", "--low-res", "112", "--seed", "0"),
)


@dataclass(frozen=True)
class BuildConfig(Settings):
    """Where a release build reads and writes; validated on construction (``resolve``: flags >
    DERMASSIST_BUILD_* > defaults)."""

    env_prefix = "DERMASSIST_BUILD_"
    config_error = TrainingConfigError

    data: Path = SHARED_DATA
    out: Path = PROJECT_ROOT / "data" / "release"
    runs: Path = PROJECT_ROOT / "data" / "runs" / "release"
    recipe: Recipe = REAL_RECIPE
    force: bool = False
    # set by code (a stage's own flags), not by a flag of release
    extra_args: dict[str, tuple[str, ...]] = field(default_factory=dict, metadata=flag_name(None))

    def __post_init__(self) -> None:
        for name in ("data", "out", "runs"):  # one spelling per folder, so stage fingerprints do not depend on it
            object.__setattr__(self, name, Path(getattr(self, name)).resolve())
            if Path(getattr(self, name)).exists() and not Path(getattr(self, name)).is_dir():
                raise TrainingConfigError(f"--{name} {getattr(self, name)} is a file; expected a folder (it is checked "
                                          "before any training, not after the first stage)")
        for name in (self.recipe.seg_data, *self.recipe.seg_extra, *self.recipe.cls_data):
            if not (Path(self.data) / name).is_dir():
                where = (f"the real sets are in {SHARED_DATA}" if SHARED_DATA.is_dir() else
                         f"the real sets lie beside the checkout as {SHARED_DATA}, which is not there: pass --data "
                         "/path/to/shared/data")
                raise TrainingConfigError(
                    f"dataset folder {Path(self.data) / name} does not exist; --data must hold {name}/ "
                    f"({where}; `dermassist synth` makes a synthetic one)"
                )


NOT_MODEL_CODE = ("pipeline.py", "experiments.py", "importer.py", "child.py")  # no stage runs them


def source_digest(stage: str) -> str:
    """Hash of the sources a stage's output depends on: ``preprocess``, the shared ``training`` modules
    and the stage's own package; a change there invalidates that stage's output."""
    h = hashlib.sha256()
    paths = sorted((PROJECT_ROOT / "preprocess").rglob("*.py"))
    training = PROJECT_ROOT / "training"
    paths += sorted(p for p in training.glob("*.py") if p.name not in NOT_MODEL_CODE)
    paths += sorted(p for p in training.rglob("*.py") if p.parent.name in (stage, "export"))
    for path in paths:
        h.update(path.relative_to(PROJECT_ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def data_digest(folders: Iterable[Path]) -> str:
    """Hash of what dataset folders hold: every file's path, size and modification time, and the bytes of the label
    files (CSV, XLSX, TXT), so a relabelled or replaced image makes a stage run again."""
    h = hashlib.sha256()
    for folder in folders:
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            info = path.stat()
            h.update(f"{path.relative_to(folder).as_posix()}:{info.st_size}:{info.st_mtime_ns}".encode())
            if path.suffix.lower() in (".csv", ".xlsx", ".txt"):
                h.update(path.read_bytes())
    return h.hexdigest()[:16]


def check_masks(masks: Path, segmenter: Path) -> None:
    """Refuse predicted masks that another segmenter than ``segmenter`` wrote, or that carry no record of theirs: a
    re-tune on them fits the release's tuned values to crops its served ensemble never cuts."""
    record = Path(masks) / MASKS_RECORD
    fix = (f"pass an empty --runs folder (the release's own segmenter then predicts the masks again), or remove {masks}")
    try:
        recorded = json.loads(record.read_text()).get("segmenter_sha256")
    except (OSError, ValueError, AttributeError) as e:
        raise TrainingConfigError(f"the predicted masks in {masks} carry no record of the segmenter that wrote them "
                                  f"({record}: {e}); expected masks of this release's {segmenter.name}: {fix}") from e
    actual = file_sha256(segmenter)
    if recorded != actual:
        raise TrainingConfigError(f"the predicted masks in {masks} were written by another segmenter (weights sha256 "
                                  f"{str(recorded)[:16]}..., this release's {segmenter.name} is {actual[:16]}...): {fix}")


def fingerprint(*parts: object) -> str:
    """A short stable hash of JSON-able parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# What a stage prints that is the frameworks' start-up noise, not the run's: absl's preamble (a "WARNING" line
# TF_CPP_MIN_LOG_LEVEL does not silence), TensorFlow's C++ info and warning lines (oneDNN's notice among them) and
# TensorFlow's and absl's Python warnings. The stage's own WARNING lines (calibration, data) are not among them.
FRAMEWORK_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\)"  # absl's preamble
    r"|WARNING:(tensorflow|absl):"  # TensorFlow's and absl's Python warnings
    r"|[IW]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\]"  # TensorFlow's C++ info and warning lines (glog)
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] \S+:\d+\]"  # the same in older TensorFlow
    r"|.*oneDNN custom operations are on")


def shown_on_console(line: str) -> bool:
    """Whether a stage's output line goes to the console as well as to its log: all but the frameworks' noise."""
    return FRAMEWORK_NOISE.match(line) is None


def forward_sigterm(proc: subprocess.Popen) -> Callable[[], None]:
    """Until the returned function is called, a SIGTERM to this process (``kill`` of a build, a scheduler's stop) is
    passed on to the stage ``proc``, which saves what it reached and exits, and the build then stops with its message;
    the build alone would die and leave the stage training on (a Ctrl-C reaches both: the terminal signals the group)
    (:func:`training.signals.on_sigterm`)."""
    def forward(signum: int, frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    return on_sigterm(forward)


def passed_on(line: str, log: Any) -> bool:
    """Write a line of a stage's output to its log and, but for the frameworks' noise, to stderr; whether it was shown."""
    log.write(line)
    if not shown_on_console(line):
        return False
    sys.stderr.write(line)
    return True


def _copy_output(proc: subprocess.Popen, log: Any) -> None:
    """The rest of a stage's output into its log and, but for the frameworks' noise, to stderr, until either closes."""
    try:
        for line in proc.stdout or ():
            passed_on(line, log)
    except (OSError, ValueError):  # ValueError: the log or the pipe was closed (the stage killed, the build ending)
        return


def stop_stage(proc: subprocess.Popen, log: Any, module: str) -> None:
    """After a Ctrl-C of the build: let the stage stop and save what it reached, its output still logged, before the
    build reports that it stopped. A Ctrl-C in a terminal reached the stage too; one sent to the build alone (``kill
    -INT``, a job runner's interrupt) had left it training on, unlogged, to write into the release later (training
    input audit, finding 7): after STAGE_GRACE_S it is told with SIGTERM, which it handles as a Ctrl-C and ignores
    while it saves, and killed after STAGE_SAVE_S, or at a second Ctrl-C (review 16, finding 3)."""
    copying = threading.Thread(target=_copy_output, args=(proc, log), name="stage-output", daemon=True)
    copying.start()
    try:
        try:
            proc.wait(timeout=STAGE_GRACE_S)
        except subprocess.TimeoutExpired:
            logger.warning("stopping stage %s: it saves what it reached (up to %.0f s; Ctrl-C again kills it)", module,
                           STAGE_SAVE_S)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STAGE_SAVE_S)
            except subprocess.TimeoutExpired:
                logger.error("stage %s did not stop within %.0f s: killed", module, STAGE_SAVE_S)
                proc.kill()
    except KeyboardInterrupt:  # a second Ctrl-C: the stage is killed, never left running on its own
        logger.error("stage %s killed before it finished saving (a second Ctrl-C)", module)
        proc.kill()
    finally:
        proc.wait()
        copying.join(timeout=5)


def run_stage(module: str, args: list[str], log_path: Path) -> float:
    """Run ``python -m <module> <args>`` in its own process, streaming its output to a log and, but for the
    frameworks' noise, to stderr (progress and the stage's warnings show); returns seconds, raises StageError naming
    the stage's last line (the rest is above, not repeated) and its log when it fails."""
    cmd = [sys.executable, "-m", module, *args]
    env = framework_env()
    logger.info("stage %s: %s (log %s)", module, " ".join(args), log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    last = ""
    start = time.perf_counter()
    with log_path.open("w") as log, subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        restore = forward_sigterm(proc)
        try:
            for line in proc.stdout or ():
                if passed_on(line, log):
                    last = line.split("\r")[-1].strip() or last  # a progress bar's line ends in the bar's last state
            code = proc.wait()
        except KeyboardInterrupt:
            stop_stage(proc, log, module)
            raise
        finally:
            restore()
    if code != 0:
        said = f" (its last line: {last})" if last else ""
        raise StageError(f"stage {module} exited with {code}{said}; its whole output is in {log_path}")
    return time.perf_counter() - start


def _load_state(path: Path, force: bool = False) -> dict:
    """The build state (each finished stage's fingerprint and seconds) a resumed build reuses stages by; empty before
    the first stage. An unreadable or corrupt one is an error naming the file (dropping it would train every stage
    again, hours, without a word); with ``force``, which trains every stage anyway, it is logged and replaced."""
    try:
        state = json.loads(path.read_text())
        if not isinstance(state, dict) or not all(isinstance(v, dict) for v in state.values()):
            raise ValueError(f"expected a JSON object of stages, got {type(state).__name__} {str(state)[:80]!r}")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        if force:
            logger.warning("build state %s cannot be read (%s); --force trains every stage anyway and writes it anew",
                           path, e)
            return {}
        raise TrainingError(
            f"build state {path} cannot be read ({e}); it records which stages of an interrupted build are done, so "
            "without it every stage trains again: delete it, or pass --force, to rebuild from the first stage") from e
    return state


def _save_state(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, state)


def _stage(name: str, module: str, args: list[str], config: BuildConfig, state: dict, outputs: list[Path],
           fp: str, checkpoint: Path | None = None) -> None:
    """Run a stage unless its outputs are current. The state records a stage as started (its fingerprint) before it
    runs and as done after; a stage started with the same fingerprint that left its resumable ``checkpoint`` (stopped
    by Ctrl-C, or failed after an epoch ended) continues from it (``--resume``) rather than from epoch 1, unless
    ``--force``."""
    runs = Path(config.runs)
    recorded = state.get(name, {})
    if not config.force and recorded.get("fingerprint") == fp and all(p.exists() for p in outputs):
        logger.info("stage %s is current (fingerprint %s); reusing it", name, fp)
        return
    if not config.force and recorded.get("started") == fp and checkpoint is not None and checkpoint.is_file():
        logger.info("stage %s resumes its unfinished run (fingerprint %s) from its checkpoint %s", name, fp, checkpoint)
        args = [*args, "--resume"]
    state[name] = {"started": fp}
    _save_state(runs / STATE_FILE, state)
    seconds = run_stage(module, args, runs / f"{name}.log")
    state[name] = {"fingerprint": fp, "seconds": round(seconds, 1)}
    _save_state(runs / STATE_FILE, state)


def segmenter_stage(config: BuildConfig) -> tuple[list[str], str]:
    """(arguments, fingerprint) of the segmenter stage of a build."""
    data, out, runs, recipe = config.data, config.out, config.runs, config.recipe
    args = ["--data", str(data / recipe.seg_data), *sum((["--extra-data", str(data / d)] for d in recipe.seg_extra), []),
            "--out", str(runs / "segmenter"), "--release", str(out), "--predict-out", str(runs / "predicted_masks"),
            *sum((["--predict-masks", str(data / d)] for d in recipe.cls_data), []),
            *recipe.seg_args, *config.extra_args.get("segmenter", ())]
    folders = [data / recipe.seg_data, *(data / d for d in recipe.seg_extra), *(data / d for d in recipe.cls_data)]
    return args, fingerprint(args, source_digest("segmenter"), data_digest(folders))


def classifier_args(config: BuildConfig, threshold: float) -> list[str]:
    """Arguments of the classifier stage: crops from the runs folder's predicted masks at the segmenter's tuned threshold."""
    data, out, runs, recipe = config.data, config.out, config.runs, config.recipe
    return ["--data", *(str(data / d) for d in recipe.cls_data), "--predicted-masks", str(runs / "predicted_masks"),
            "--crop-threshold", str(threshold), "--out", str(runs / "classifier"), "--release", str(out),
            *recipe.cls_args, *config.extra_args.get("classifier", ())]


def classifier_stage(config: BuildConfig, threshold: float, seg_fp: str) -> tuple[list[str], str]:
    """(arguments, fingerprint) of the classifier stage; the fingerprint also covers the segmenter's."""
    args = classifier_args(config, threshold)
    folders = [Path(config.data) / d for d in config.recipe.cls_data]
    return args, fingerprint(args, seg_fp, source_digest("classifier"), data_digest(folders))


def build_release(config: BuildConfig) -> dict:
    """Train both models with the recipe into ``config.out``; returns the release manifest."""
    data, out, runs, recipe = config.data, config.out, config.runs, config.recipe
    _check_out(config)
    state = _load_state(runs / STATE_FILE, config.force)
    seg_args, seg_fp = segmenter_stage(config)
    _stage("segmenter", "training.segmenter.stage", seg_args, config, state,
           [out / SEGMENTER_WEIGHTS, runs / "segmenter" / "segmenter_metrics.json", runs / "predicted_masks"], seg_fp,
           runs / "segmenter" / SEGMENTER_CHECKPOINT)
    if (out / SEGMENTER_WEIGHTS).is_file():  # the stage wrote both, or found both current
        record_masks(runs / "predicted_masks", out / SEGMENTER_WEIGHTS, same_model=True)
    threshold = read_manifest(out)["segmenter"]["threshold"]
    cls_args, cls_fp = classifier_stage(config, threshold, seg_fp)
    _stage("classifier", "training.classifier.stage", cls_args, config, state,
           [out / CLASSIFIER_WEIGHTS, runs / "classifier" / "classifier_metrics.json"], cls_fp,
           runs / "classifier" / CLASSIFIER_CHECKPOINT.format(name="classifier"))
    splits = _copy_split_manifests(runs, out)
    update_release(out, {
        "name": release_name(recipe), "version": RELEASE_VERSION, "created": time.strftime("%Y-%m-%d"),
        "recipe": asdict(recipe), "data": {"root": str(data), "splits": splits},
        "build_seconds": {k: v.get("seconds") for k, v in state.items()},
    })
    write_seen_pictures(out)  # so a site's evaluation can tell a renamed training picture (dermassist evaluate)
    return read_release(out)


def release_name(recipe: Recipe) -> str:
    """The name a build gives its release: the shipped real-data name for the shipped recipe only."""
    if recipe == REAL_RECIPE:
        return RELEASE_NAME
    return "dermassist-synthetic" if recipe == SYNTHETIC_RECIPE else "dermassist-custom"


def _check_out(config: BuildConfig) -> None:
    """A build resumes into its own release; it does not write over one of another recipe unless forced."""
    manifest = Path(config.out) / MANIFEST
    if config.force or not manifest.is_file():
        return
    recorded = read_manifest(config.out).get("recipe")
    if recorded is not None and Recipe.from_dict(recorded) != config.recipe:
        raise TrainingConfigError(
            f"{config.out} holds a release of another recipe ({recorded}); a build would replace its weights stage by "
            "stage: pass another --out, or --force to replace it")


def retune_release(config: BuildConfig) -> dict:
    """Re-tune the classifier ``config.out`` already holds on the splits its build used (no training), e.g. after
    a change to how the REFER threshold is chosen. The crops are cut from the build's predicted masks in the runs
    folder and split by its split manifest; where they are gone (a fresh clone), the release's own segmenter predicts
    the masks again and the manifest the release recorded is used."""
    release = read_release(config.out)
    runs = Path(config.runs)
    masks = runs / "predicted_masks"
    segmenter = Path(config.out) / SEGMENTER_WEIGHTS
    if masks.is_dir():
        check_masks(masks, segmenter)
        logger.info("re-tune step 1 of 2: the predicted masks in %s are the release segmenter's; reusing them", masks)
    else:
        logger.info("re-tune step 1 of 2: no predicted masks in %s: the release's segmenter predicts them (its float16 "
                    "weights, as served; crops may differ by a pixel from the build's); a line each tenth done", masks)
        run_stage("training.segmenter.predict",
                  ["--release", str(config.out), "--out", str(masks),
                   "--data", *(str(Path(config.data) / d) for d in config.recipe.cls_data)],
                  runs / "segmenter_predict.log")
        record_masks(masks, segmenter, same_model=True)
    split = runs / "classifier" / "classifier_split.json"
    recorded = release.get("data", {}).get("splits", {}).get("classifier")
    if not split.is_file() and recorded:
        logger.info("no split manifest in %s: re-tuning on the one the release recorded, %s", split.parent, recorded)
        split.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(config.out) / recorded, split)
    args = classifier_args(config, release["segmenter"]["threshold"])
    logger.info("re-tune step 2 of 2: the classifier stage cuts the crops of %s, computes the release classifier's "
                "features and fits its tuned values; a line each tenth done", ", ".join(config.recipe.cls_data))
    run_stage("training.classifier.stage", [*args, "--retune"], runs / "classifier_retune.log")
    return read_release(config.out)


def _copy_split_manifests(runs: Path, out: Path) -> dict[str, str]:
    """Copy the stages' split manifests into the release's ``splits/`` folder; returns their release paths."""
    target = out / "splits"
    target.mkdir(parents=True, exist_ok=True)
    copied = {}
    for stage, name in (("segmenter", "segmenter_split.json"), ("classifier", "classifier_split.json")):
        source = runs / stage / name
        if source.is_file():
            shutil.copy2(source, target / name)
            copied[stage] = f"splits/{name}"
    return copied


def export_release(release: Path, repository: Path) -> list[str]:
    """Export both models of a release into a repository that already holds the configs and model.py files."""
    read_release(release)
    return [run_child("training.export.release", [kind, str(release), str(repository)], ReleaseError,
                      f"{kind} export of {release}") for kind in ("segmenter", "classifier")]


def metrics_from_release(release: dict) -> dict:
    """The ``metrics.json`` keys ARCHITECTURE.md lists, from a release manifest (served figures where the
    release was evaluated through the ensemble, training-time figures otherwise)."""
    seg, cls, triage = release["segmenter"], release["classifier"], release["triage"]
    served = release.get("evaluation", {})
    calibration = cls["figures"].get("calibration", {})
    cls_test = served.get("classification_test") or cls["figures"]["test"]
    return {
        "segmentation": {"val": served.get("segmentation_val") or seg["figures"]["val"], "threshold": seg["threshold"],
                         "test": seg["figures"].get("test", {})},
        "classification": {
            "test": {**cls_test,
                     "ece": cls_test.get("ece", calibration.get("test", {}).get("ece_after")),
                     "ece_before_calibration": _ece_before(cls_test, calibration)},
            "temperature": cls["temperature"],
        },
        "triage": {"threshold": triage["values"]["refer_threshold"],
                   "test": served.get("triage_test") or triage["figures"]["test"]},
        "ood": {"test": served.get("ood_test", {}), "scale": cls["ood_scale"]},
        "dataset": {"release": release.get("name"), "version": release.get("version"), **release.get("data", {}),
                    "segmentation": seg["figures"].get("dataset"), "classification": cls["figures"].get("dataset"),
                    "classification_splits": cls["figures"].get("splits")},
        "evaluation": served,
    }


def _ece_before(served: dict, calibration: dict) -> float | None:
    """ECE before calibration: the served answers' own, on the images their "ece" is of; for a release evaluated before
    it was measured there, the classifier split's test figure (its own test images, PH2's among them)."""
    own = served.get("ece_before_calibration")
    return calibration.get("test", {}).get("ece_before") if own is None else own


def evaluated_sets(release_dir: Path) -> dict[str, dict]:
    """Each real set the release was evaluated on, from its ``reports/<set>/report.json``: name, size, data folder
    and split with its manifest (inside the release, relative to it; empty for a set used whole)."""
    sets = {}
    for path in sorted(Path(release_dir).glob("reports/*/report.json")):
        report = json.loads(path.read_text())
        manifest = report.get("split_manifest") or ""
        if manifest and (Path(release_dir) / "splits" / Path(manifest).name).is_file():
            manifest = f"splits/{Path(manifest).name}"
        sets[report["name"]] = {"name": report["name"], "images": report["images"],
                                "data": Path(report.get("data") or "").name, "split": report.get("split"),
                                "split_manifest": manifest}
    return sets


def write_metrics(release_dir: Path, reports: Path) -> dict:
    """Write ``metrics.json`` for a release and copy its report plots beside it."""
    release = read_release(release_dir)
    reports = Path(reports)
    reports.mkdir(parents=True, exist_ok=True)
    metrics = metrics_from_release(release)
    metrics["evaluation"]["sets"] = evaluated_sets(Path(release_dir))
    (reports / METRICS_FILE).write_text(json.dumps(metrics, indent=1))
    for png in Path(release_dir).glob("reports/**/*.png"):
        shutil.copy2(png, reports / f"{png.parent.name}_{png.name}")
    return metrics

