"""A stand-in training stage for the build's signal tests: says its pid, trains (sleeps) for a minute, and on SIGTERM
or Ctrl-C says it saved and exits as a stopped run does; with the argument ``slow`` its save takes 30 s, during which
it ignores SIGTERM (as a real stage's save does)."""
from __future__ import annotations

import os
import signal
import sys
import time


def _saved(signum: int, frame: object) -> None:
    if "slow" in sys.argv[1:]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("saving", flush=True)
        time.sleep(30)
    print(f"saved after signal {signum}", flush=True)
    sys.exit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _saved)
    signal.signal(signal.SIGINT, _saved)
    print(f"stage pid {os.getpid()}", flush=True)
    print("epoch 1", flush=True)
    time.sleep(60)
    print("finished: weights written", flush=True)
