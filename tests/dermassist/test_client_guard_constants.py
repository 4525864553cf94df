"""Values the thin client copies from the guard (the client imports no project package, and the serving image ships
no client, so neither side can import the other's): each copy must equal its original."""
from __future__ import annotations

from dataclasses import fields

from dermassist.guard.config import MIB, GuardConfig
from dermassist.guard.statuses import STUB_UNHEALTHY
from dermassist_client.config import MAX_MESSAGE_BYTES
from dermassist_client.translate import STEP_UNHEALTHY


def test_the_client_retries_what_the_guard_calls_an_unhealthy_step() -> None:
    assert STEP_UNHEALTHY == STUB_UNHEALTHY


def test_the_clients_largest_request_is_the_largest_the_guards_public_port_reads_by_default() -> None:
    (max_request_mib,) = [f.default for f in fields(GuardConfig) if f.name == "max_request_mib"]
    assert MAX_MESSAGE_BYTES == max_request_mib * MIB
