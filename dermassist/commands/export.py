"""``dermassist export``: write a Keras segmenter and a torchvision ResNet18 into the model repository.

Each framework runs in its own subprocess (TensorFlow and PyTorch never share a process)."""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

from ..errors import ExportError

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``export``."""
    parser.add_argument("--keras", type=Path, help="Keras segmenter (.keras file), input (256,256,3) -> (256,256,1)")
    parser.add_argument("--torch", type=Path, help="torchvision ResNet18 state_dict (.pt) with an 8-class fc")
    parser.add_argument("--repository", type=Path, help="model repository (default: the project's model_repository/)")


def export_in_subprocess(kind: str, source: Path, repository: Path) -> None:
    """Run ``python -m dermassist.export_worker KIND SOURCE REPOSITORY``; raise ExportError on failure."""
    if not source.exists():
        raise ExportError(f"{kind} model file {source} does not exist")
    cmd = [sys.executable, "-m", "dermassist.export_worker", kind, str(source), str(repository)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ExportError(f"{kind} export failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    logger.info("%s", done.stdout.strip())


def run(args: argparse.Namespace) -> int:
    """Export whichever of --keras / --torch was given."""
    from ..repository import SOURCE_REPOSITORY

    if args.keras is None and args.torch is None:
        raise ExportError("nothing to export: give --keras MODEL.keras and/or --torch RESNET18.pt")
    repository = args.repository or SOURCE_REPOSITORY
    if args.keras is not None:
        export_in_subprocess("segmenter", args.keras, repository)
    if args.torch is not None:
        export_in_subprocess("classifier", args.torch, repository)
    return 0
