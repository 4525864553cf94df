"""A real Orthanc (Debian's ``orthanc`` package) started by a test as the PACS, with small REST helpers."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from dermassist.base.server import free_ports

ORTHANC_AET = "ORTHANC"
START_TIMEOUT_S = 60.0


def orthanc_binary() -> str:
    """Path of the Orthanc executable (installed by ``make system-deps``)."""
    found = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)
    if not found:
        raise FileNotFoundError("Orthanc not found: apt-get install -y --no-install-recommends orthanc "
                                "(the Makefile's system-deps target does it)")
    return found


class Orthanc:
    """One Orthanc process on free ports with its storage in ``root``; a context manager."""

    def __init__(self, root: Path, dicom_port: int | None = None, extra_config: dict | None = None) -> None:
        self.root = root
        self.extra_config = dict(extra_config or {})  # more orthanc.json settings, e.g. {"RleTransferSyntaxAccepted": False}
        self.http_port, default_dicom = free_ports(2)
        self.dicom_port = dicom_port or default_dicom
        self.ae_title = ORTHANC_AET
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Base URL of the REST API."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> Orthanc:
        """Start Orthanc and wait until ``GET /system`` answers."""
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = self.root / "orthanc.json"
        config.write_text(json.dumps({
            "Name": "DermAssistTestPACS", "HttpPort": self.http_port, "DicomPort": self.dicom_port,
            "DicomAet": self.ae_title, "StorageDirectory": str(storage), "IndexDirectory": str(storage),
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomCheckCalledAet": False,
            **self.extra_config,
        }))
        self._log = open(self.root / "orthanc.log", "wb")
        self._process = subprocess.Popen([orthanc_binary(), str(config)], stdout=self._log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self._process.returncode}: {self.log_tail()}")
            try:
                self.get("/system")
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"Orthanc did not answer GET /system within {START_TIMEOUT_S} s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._process = None
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> Orthanc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, chars: int = 3000) -> str:
        """The end of Orthanc's log."""
        path = self.root / "orthanc.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def get(self, path: str) -> bytes:
        """GET a REST path; the body."""
        with urllib.request.urlopen(self.url + path, timeout=30) as answer:
            return answer.read()

    def post(self, path: str, body: bytes) -> bytes:
        """POST ``body`` to a REST path; the answer's body (an HTTP error raises, with Orthanc's explanation)."""
        request = urllib.request.Request(self.url + path, data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return answer.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"Orthanc refused POST {path}: {e.code} {e.read()[:2000]!r}") from e

    def get_json(self, path: str):
        """GET a REST path as JSON."""
        return json.loads(self.get(path))

    def instances(self) -> list[dict]:
        """Every stored instance's simplified main tags (with its Orthanc id under ``ID``)."""
        found = []
        for orthanc_id in self.get_json("/instances"):
            tags = self.get_json(f"/instances/{orthanc_id}/simplified-tags")
            found.append({"ID": orthanc_id, **tags})
        return found

    def instance_file(self, orthanc_id: str) -> bytes:
        """The stored DICOM file of one instance."""
        return self.get(f"/instances/{orthanc_id}/file")
