"""Command-line flags that name data: given twice, the first had been dropped without a word."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any


class GivenOnce(argparse.Action):
    """A flag of one value that refuses a second (argparse keeps the last: ``--data A --data B`` read B alone)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        """Set the value; a usage error when the flag already set one."""
        earlier = getattr(namespace, self.dest, None)
        if earlier is not None and earlier != self.default:
            parser.error(f"{option_string} was given twice ({earlier}, then {values}); it takes one value: "
                         f"give it once")
        setattr(namespace, self.dest, values)


class Pooled(argparse.Action):
    """A flag of one or more values whose repeats add up (``--data A --data B`` is ``--data A B``; argparse kept the
    last: B alone)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        """Add the values to those of the flag's earlier uses."""
        earlier = getattr(namespace, self.dest, None)
        given = list(values) if isinstance(values, Sequence) and not isinstance(values, str) else [values]
        setattr(namespace, self.dest, [*(earlier if earlier is not None and earlier is not self.default else []), *given])
