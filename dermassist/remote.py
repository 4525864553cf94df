"""Settings of a command that can call a running DermAssist through the client SDK: ``--url`` and its TLS options
(``dermassist evaluate``, ``dermassist gpu-check``); ``add_tls_flags`` adds the TLS flags."""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base.settings import flag_name, setting_names


@dataclass(frozen=True, kw_only=True)
class RemoteSettings:
    """A running DermAssist's gRPC address, the timeout of each call and the client SDK's TLS options."""

    url: str | None = None
    timeout_s: float = field(default=120.0, metadata=flag_name("--timeout"))  # of each call, seconds
    ssl: bool = False
    root_certificates: Path | None = None
    private_key: Path | None = None
    certificate_chain: Path | None = None

    def uses_tls(self) -> bool:
        """Whether any TLS option is set."""
        return bool(self.ssl or self.root_certificates or self.private_key or self.certificate_chain)

    def client_options(self) -> dict[str, Any]:
        """The TLS keyword options of the client SDK."""
        return {"ssl": self.ssl, "root_certificates": self.root_certificates, "private_key": self.private_key,
                "certificate_chain": self.certificate_chain}

    def check_remote(self, error: type[Exception], without_url: str) -> None:
        """Raise ``error`` for a timeout that is not a positive number of seconds, or TLS options that come without
        ``--url`` (``without_url`` says why) or that the client SDK refuses (a missing file, a key without its
        certificate)."""
        timeout = self.timeout_s
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
            raise error(f"{setting_names(type(self), 'timeout_s')} must be a positive number of seconds (each call's "
                        f"deadline), got {timeout!r}; pass another, e.g. the default {RemoteSettings.timeout_s:g}")
        if not self.uses_tls():
            return
        if not self.url:
            raise error(f"--ssl and the certificate options need --url: {without_url}")
        from dermassist_client import ClientConfig, ClientConfigError

        try:
            ClientConfig(url=self.url, timeout_s=self.timeout_s, **self.client_options())
        except ClientConfigError as e:
            raise error(f"TLS options of --url {self.url}: {e}") from e


def add_tls_flags(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    """The TLS flags of a command whose settings ``cls`` are RemoteSettings (help with each variable and default)."""
    from dermassist_client.config import TLS_HELP

    from .base.settings import setting_help

    tls = parser.add_argument_group(title)
    tls.add_argument("--ssl", action="store_true", default=None, help=setting_help(cls, "ssl", TLS_HELP["ssl"]))
    for flag in ("--root-certificates", "--private-key", "--certificate-chain"):
        name = flag[2:].replace("-", "_")
        tls.add_argument(flag, type=Path, metavar="PEM", help=setting_help(cls, name, TLS_HELP[name]))
