"""Run one framework's work in a child process (TensorFlow and PyTorch never share one) and bring its
error message back as an exception of the caller's choosing; the entry of a training stage process"""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence

from dermassist.base.errors import INTERRUPTED_EXIT_CODE, DermAssistError
from dermassist.base.frameworks import TF_SILENT, framework_env
from dermassist.base.logs import configure_logging
from preprocess.errors import PreprocessError

ERROR_PREFIX = "CHILD-ERROR: "


def child_env() -> dict[str, str]:
    """The environment of a framework child: TensorFlow silent (errors come back as CHILD-ERROR lines), unbuffered output."""
    return framework_env(tf_level=TF_SILENT, force=True)


def run_child(module: str, args: Sequence[str], error: type[Exception], what: str) -> str:
    """``python -m module args``; its last stdout line on success, else ``error`` with the child's message."""
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=child_env())
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        errors = [ln[len(ERROR_PREFIX):] for ln in lines if ln.startswith(ERROR_PREFIX)]
        raise error(errors[-1] if errors else f"{what} failed:\n" + "\n".join(lines[-15:]))
    out = proc.stdout.strip().splitlines()
    return out[-1] if out else ""


def stage_main(module: str, description: str | None, add_arguments: Callable[[argparse.ArgumentParser], None],
               run: Callable[[argparse.Namespace], object], argv: Sequence[str] | None = None) -> int:
    """Body of a training stage's ``main`` (``python -m <module>``): parse its flags, log at INFO, run it."""
    configure_logging()
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run(args)
    except (DermAssistError, PreprocessError) as e:  # a clear message already: said once, without a traceback
        logging.getLogger(module).error("%s", e)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or a SIGTERM the stage turned into one: what it saved is logged already
        logging.getLogger(module).error("interrupted (%s): %s stopped before it finished", str(e) or "Ctrl-C", module)
        return int(getattr(e, "exit_code", INTERRUPTED_EXIT_CODE))
    return 0


def child_main(action: Callable[[], str]) -> int:
    """Body of a child's ``main``: print the action's message, or its DermAssistError for ``run_child``."""
    try:
        message = action()
    except (DermAssistError, PreprocessError) as e:
        print(ERROR_PREFIX + " ".join(str(e).split()), file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a framework's own error (Keras, PyTorch, zlib): its type and words
        traceback.print_exc()
        print(ERROR_PREFIX + f"{type(e).__name__}: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    print(message)
    return 0
