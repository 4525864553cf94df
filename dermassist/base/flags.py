"""Command-line flags that name data: given twice, the first had been dropped without a word."""
from __future__ import annotations

import argparse
import weakref
from collections.abc import Sequence
from typing import Any


class GivenOnce(argparse.Action):
    """A flag of one value that refuses a second (argparse keeps the last: ``--data A --data B`` read B alone)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the parses (their namespaces, by id: a Namespace is unhashable) that set it already, whatever its default
        self._given: dict[int, weakref.ref[argparse.Namespace]] = {}

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        """Set the value; a usage error when the flag already set one in this parse."""
        earlier = self._given.get(id(namespace))
        if earlier is not None and earlier() is namespace:
            parser.error(f"{option_string} was given twice ({getattr(namespace, self.dest)}, then {values}); it takes "
                         "one value: give it once")
        key = id(namespace)
        self._given[key] = weakref.ref(namespace, lambda _: self._given.pop(key, None))
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
