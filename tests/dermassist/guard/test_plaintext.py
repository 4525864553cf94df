"""The guard warns an operator who serves gRPC in plaintext beyond this machine."""
from __future__ import annotations

import pytest

from dermassist.guard.ports import plaintext_warning


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "triton.dermassist.svc", "127.example.com"])
def test_plaintext_on_a_network_address_is_warned_about_with_the_fix(host: str) -> None:
    warning = plaintext_warning(host, tls=False)
    assert warning is not None and f"PLAINTEXT on {host}" in warning and "--tls-cert and --tls-key" in warning


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "0:0:0:0:0:0:0:1", "localhost"])
def test_plaintext_on_loopback_is_not(host: str) -> None:
    assert plaintext_warning(host, tls=False) is None


def test_tls_is_never_warned_about() -> None:
    assert plaintext_warning("0.0.0.0", tls=True) is None
