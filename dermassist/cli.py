"""The ``dermassist`` command line. Subcommands live in ``dermassist.commands.<name>`` and are
imported only when chosen, so ``dermassist --help`` stays instant."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .base.errors import INTERRUPTED_EXIT_CODE, DermAssistError
from .base.logs import configure_logging

DESCRIPTION = "DermAssist: serve, train, release, evaluate and benchmark the skin-lesion ensemble."

# name -> (module under dermassist.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "run the embedded Triton server in the foreground"),
    "export": ("import_models", "export a Keras segmenter and a torchvision ResNet18 into the model repository"),
    "import": ("import_models", "bring your own trained models into the served repository (same as export)"),
    "synth": ("synth", "write a synthetic dermoscopy data set in the official layouts"),
    "train": ("train", "train the segmenter or the classifier"),
    "models": ("models", "export the released real-data models into the served repository (--synthetic: train a small one)"),
    "release": ("release", "train a release on real data with its recorded recipe, evaluate it through the ensemble"),
    "evaluate": ("evaluate", "run a labelled folder through the served ensemble and write a site-validation report"),
    "experiments": ("experiments", "run the seed's experiment table on real data (segmenter augmentation, crop vs full image)"),
    "bench": ("bench", "benchmark the in-process pipeline against the served ensemble"),
    "gpu-check": ("gpu_check", "check the GPU profile's classifier on the accelerator against the CPU, and time it"),
    "demo": ("demo", "start the embedded server and the Gradio demo page"),
}


def first_word(argv: Sequence[str]) -> str | None:
    """The first argument that is not an option: the (sub)command being asked for."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Build the parser; only the chosen subcommand's module is imported."""
    parser = argparse.ArgumentParser(prog="dermassist", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = first_word(argv)
    for name, (module, help_text) in COMMANDS.items():
        if name == chosen:
            mod = importlib.import_module(f"dermassist.commands.{module}")
            p = sub.add_parser(name, help=help_text, description=help_text)
            mod.add_arguments(p, argv[argv.index(name) + 1 :])
            p.set_defaults(run=mod.run)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dermassist``; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.run(args) or 0)
    except DermAssistError as e:
        logging.getLogger("dermassist").error("%s", e)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or a SIGTERM a command turns into one (its text and exit code say so)
        logging.getLogger("dermassist").error("interrupted (%s): dermassist %s stopped before it finished",
                                              str(e) or "Ctrl-C", args.command)
        return int(getattr(e, "exit_code", INTERRUPTED_EXIT_CODE))


if __name__ == "__main__":
    sys.exit(main())
