"""Flags that name data: a repeat is pooled or refused, never the first dropped (training input audit, finding 3:
`--data A --data B` trained on B alone)."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from dermassist.base.flags import GivenOnce, Pooled


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--data", type=Path, nargs="+", action=Pooled, required=True)
    parser.add_argument("--extra", type=Path, nargs="+", action=Pooled, default=[])
    parser.add_argument("--out", type=Path, action=GivenOnce)
    parser.add_argument("--mode", action=GivenOnce, default="fast")
    return parser


def test_a_pooled_flag_adds_its_repeats_up_and_keeps_its_default_apart() -> None:
    parser = _parser()
    args = parser.parse_args(["--data", "A", "--extra", "X", "--data", "B", "C", "--extra", "Y"])
    assert (args.data, args.extra) == ([Path("A"), Path("B"), Path("C")], [Path("X"), Path("Y")])
    again = parser.parse_args(["--data", "D"])
    assert (again.data, again.extra) == ([Path("D")], [])


def test_a_flag_given_once_refuses_a_second_value_naming_both(capsys: pytest.CaptureFixture[str]) -> None:
    assert _parser().parse_args(["--data", "A", "--out", "O"]).out == Path("O")
    with pytest.raises(SystemExit) as stop:
        _parser().parse_args(["--data", "A", "--out", "O", "--out", "P"])
    assert stop.value.code == 2
    assert "--out was given twice (O, then P); it takes one value: give it once" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a first value equal to the default is a value given (review 16, finding 9)
        _parser().parse_args(["--data", "A", "--mode", "fast", "--mode", "slow"])
    assert "--mode was given twice (fast, then slow)" in capsys.readouterr().err
    parser = _parser()
    assert [parser.parse_args(["--data", "A", "--out", out]).out for out in ("O", "P")] == [Path("O"), Path("P")]


def test_the_commands_that_take_data_pool_or_refuse_a_repeated_data_flag() -> None:
    from training.classifier.stage import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", "A", "--data", "B", "--train-only", "X", "--train-only", "Y"])
    assert (args.data, args.train_only) == ([Path("A"), Path("B")], [Path("X"), Path("Y")])
    for flag in ("--predicted-masks", "--release"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--data", "A", flag, "M1", flag, "M2"])
    run = subprocess.run([sys.executable, "-m", "dermassist.cli", "evaluate", "--data", "A", "--data", "B"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--data was given twice (A, then B)" in run.stderr
