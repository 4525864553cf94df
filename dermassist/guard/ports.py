"""The guard's public ports and address: which cannot be listened on and why, in one message with the fixes, and the
warning for plaintext gRPC beyond this machine."""
from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from ..base.server import bind_fixes, bind_problem
from ..base.server_config import ServerConfig
from ..base.settings import setting_names


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # another host name: it may resolve to any interface
        return False


@dataclass(frozen=True)
class BusyPort:
    """A public port that cannot be listened on: what it serves, where, why, and ServerConfig's field that sets it
    (``setting``)."""

    what: str
    host: str
    port: int
    reason: str
    setting: str
    code: int | None = None  # the errno of the failed bind, where known (EACCES: a privileged port, or a policy)


def busy_public_ports(public: ServerConfig, triton: ServerConfig | None = None) -> list[BusyPort]:
    """The public ports of a guard that cannot be listened on now: the gRPC front, the health endpoint and, with the
    config of the tritonserver it starts (``triton``), Triton's metrics port."""
    host = public.host
    ports = [("gRPC", host, public.grpc_port, "grpc_port"), ("the health endpoint", host, public.http_port, "http_port")]
    if triton is not None:
        ports.append(("Triton's metrics", triton.metrics_host or host, triton.metrics_port, "metrics_port"))
    return [BusyPort(what, where, port, error.strerror or str(error), setting, error.errno)
            for what, where, port, setting in ports if (error := bind_problem(where, port)) is not None]


def bind_failure(busy: Sequence[BusyPort]) -> str:
    """Why the public ports in ``busy`` cannot be served, every one in one message, and the fixes (a taken port's and
    a privileged port's differ)."""
    where = ", ".join(f"{b.what} on {b.host}:{b.port} ({b.reason})" for b in busy)
    flags = " and ".join(setting_names(ServerConfig, b.setting) for b in busy)
    hosts = dict.fromkeys(setting_names(ServerConfig, "metrics_host" if b.setting == "metrics_port" else "host")
                          for b in busy)
    fixes = bind_fixes([(b.port, b.code) for b in busy])
    return (f"cannot serve {where}; expected ports no other process listens on, on an address of this machine: "
            f"{'; '.join(fixes)}; or pass another {flags}; if the address is wrong, fix {' or '.join(hosts)}")


def plaintext_warning(host: str, tls: bool) -> str | None:
    """What to tell an operator who serves gRPC without TLS beyond this machine (None: TLS, or loopback only)."""
    if tls or is_loopback(host):
        return None
    return (f"serving gRPC in PLAINTEXT on {host}: images and answers cross the network unencrypted and no client "
            "is authenticated; pass --tls-cert and --tls-key (docs/operations.md, 'Certificates and keys')")
