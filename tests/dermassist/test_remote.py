"""The settings of a command that calls a running DermAssist (evaluate, gpu-check): which options mean TLS, and that
TLS options without --url, or a timeout that is no number of seconds, are refused."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from dermassist.remote import RemoteSettings


class Refused(Exception):
    """The calling command's error."""


@dataclass(frozen=True, kw_only=True)
class Remote(RemoteSettings):
    """RemoteSettings alone, as a command's settings class derives from it."""


@pytest.mark.parametrize("option", ["ssl", "root_certificates", "private_key", "certificate_chain"])
def test_each_tls_option_alone_means_tls_and_needs_a_url(option: str, tmp_path: Path) -> None:
    value = True if option == "ssl" else tmp_path / "x.pem"
    settings = Remote(**{option: value})
    assert settings.uses_tls()
    with pytest.raises(Refused, match="^--ssl and the certificate options need --url: local only$"):
        settings.check_remote(Refused, "local only")


def test_no_tls_option_is_plaintext_and_needs_nothing() -> None:
    assert not Remote().uses_tls()
    Remote().check_remote(Refused, "unused")  # nothing to refuse
    assert Remote().client_options() == {"ssl": False, "root_certificates": None, "private_key": None,
                                         "certificate_chain": None}


@pytest.mark.parametrize("timeout", [0, -2, float("inf"), float("nan"), True])
def test_a_timeout_that_is_no_positive_number_of_seconds_is_refused(timeout: object) -> None:
    with pytest.raises(Refused, match=r"^--timeout / TIMEOUT_S must be a positive number of seconds"):
        Remote(url="10.0.0.5:8001", timeout_s=timeout).check_remote(Refused, "unused")  # type: ignore[arg-type]
