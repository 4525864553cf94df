"""A stand-in training stage for the build's stage runner (``python -m tests.training.stage_stand_in``): it says it
started (and touches the file its argument names), then waits; on SIGTERM it says so and exits 143, as the classifier
stage does."""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path


def _stopped(signum: int, frame: object) -> None:
    print("interrupted (stopped by signal SIGTERM): saved the best epoch", flush=True)
    sys.exit(143)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stopped)
    print("started", flush=True)
    Path(sys.argv[1]).touch()
    time.sleep(60)
    print("finished without a signal", flush=True)
