"""Helpers for tests of the guard: certificates made on the spot, guards on free ports, audit reading."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dermassist.base.server import free_ports
from dermassist.base.server_config import ServerConfig


@dataclass(frozen=True)
class Certificates:
    """PEM files of a throw-away CA, a server certificate for 127.0.0.1/localhost and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_name: str


def make_certificates(folder: Path, client_name: str = "clinic-a") -> Certificates:
    """Issue the certificates with trustme into ``folder``."""
    import trustme

    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert(f"{client_name}.example.org", common_name=client_name)
    paths = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key",
                         folder / "client.pem", folder / "client.key", client_name)
    ca.cert_pem.write_to_path(paths.ca)
    for leaf, cert, key in ((server, paths.server_cert, paths.server_key), (client, paths.client_cert, paths.client_key)):
        leaf.private_key_pem.write_to_path(key)
        for i, blob in enumerate(leaf.cert_chain_pems):
            blob.write_to_path(cert, append=i > 0)
    return paths


def public_config(repository: Path, **kwargs: object) -> ServerConfig:
    """The guard's public settings on three free ports."""
    http, grpc, metrics = free_ports(3)
    return ServerConfig(repository=repository, http_port=http, grpc_port=grpc, metrics_port=metrics, **kwargs)


def audit_lines(path: Path) -> list[dict]:
    """Every JSON line of an audit trail."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
