"""Start, watch and stop ``tritonserver``: the binary shipped in the nvidia-pytriton wheel, or a system one."""
from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import ServerError, ServerStartupError
from .frameworks import quiet_tensorflow
from .server_config import ADMIN_KEY_NAME, RESTRICTED_APIS, ServerConfig

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1
SHM_DIR = Path("/dev/shm")


@dataclass(frozen=True)
class TritonInstall:
    """Files of the Triton build inside the installed nvidia-pytriton wheel."""

    binary: Path
    python_backend: Path
    stub: Path
    libs: Path | None  # the wheel's shared libraries; None for a system install
    backends: Path | None = None  # a system install's backend directory, used as it is


def locate_triton(home: Path | None = None) -> TritonInstall:
    """Find tritonserver, its Python backend and the stub: under ``home`` (e.g. /opt/tritonserver), else in the wheel."""
    if home is not None:
        home = Path(home)
        install = TritonInstall(binary=home / "bin" / "tritonserver", python_backend=home / "backends" / "python",
                                stub=home / "backends" / "python" / "triton_python_backend_stub", libs=None,
                                backends=home / "backends")
        for path in (install.binary, install.stub):
            if not path.exists():
                raise ServerError(f"{path} is missing from the Triton install at {home}; "
                                  "point DERMASSIST_TRITON_HOME at a Triton with the Python backend")
        return install
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("nvidia-pytriton is not installed in this environment; run `make install`")
    root = Path(list(spec.submodule_search_locations)[0]) / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    libs = root.parents[1] / "nvidia_pytriton.libs"
    install = TritonInstall(
        binary=root / "bin" / "tritonserver",
        python_backend=root / "backends" / "python",
        stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
        libs=libs,
    )
    for path in (install.binary, install.python_backend, install.stub, libs):
        if not path.exists():
            raise ServerError(f"{path} is missing from the nvidia-pytriton wheel (Python {version}); reinstall it")
    return install


def stage_backends(install: TritonInstall, runtime_dir: Path) -> Path:
    """Lay out a backend directory whose python/ holds the wheel's backend plus the matching stub.

    A system install already has that layout: its backend directory is used as it is.
    """
    if install.backends is not None:
        return install.backends
    python_dir = Path(runtime_dir) / "backends" / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for item in install.python_backend.iterdir():
        if item.name != "__pycache__":
            (python_dir / item.name).symlink_to(item)
    shutil.copy2(install.stub, python_dir / install.stub.name)
    return python_dir.parent


def shm_prefix() -> str:
    """A name prefix, unique to one server start, for its Python backend's shared-memory regions."""
    return f"dermassist-{os.getpid()}-{secrets.token_hex(4)}-"


def remove_shm_regions(prefix: str, shm_dir: Path = SHM_DIR) -> int:
    """Delete the shared-memory regions named ``prefix*`` (a stopped server's); return how many went.

    A server and stubs that are killed never unlink their regions, and each holds a few hundred MiB of
    /dev/shm (the soak test lost 200-300 MiB per forced restart), so the launcher removes them.
    """
    if not prefix:
        raise ServerError("refusing to remove shared-memory regions without a name prefix")
    removed = 0
    for path in shm_dir.glob(f"{prefix}*"):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as e:
            logger.warning("could not remove the shared-memory region %s: %s", path, e)
    return removed


def server_command(install: TritonInstall, config: ServerConfig, backend_dir: Path, shm_name_prefix: str = "") -> list[str]:
    """The tritonserver command line for a config (and, if given, the prefix of its shared-memory regions)."""
    cmd = [
        str(install.binary),
        f"--model-repository={config.repository}",
        f"--backend-directory={backend_dir}",
        f"--model-control-mode={config.model_control_mode}",
        *(["--load-model=*"] if config.model_control_mode == "explicit" else []),
        "--strict-readiness=true",
        "--exit-on-error=true",
        f"--http-port={config.http_port}",
        f"--grpc-port={config.grpc_port}",
        f"--metrics-port={config.metrics_port}",
        f"--http-address={config.host}",
        f"--grpc-address={config.host}",
        f"--metrics-address={config.metrics_host or config.host}",
        f"--log-verbose={config.log_verbose}",
        *restricted_flags(config.admin_key),
        *([f"--backend-config=python,shm-region-prefix-name={shm_name_prefix}"] if shm_name_prefix else []),
    ]
    if config.profile == "embedded":
        cmd.append("--model-config-name=embedded")
    return cmd


def restricted_flags(admin_key: str) -> list[str]:
    """Flags that put every API but inference, health and metadata behind the admin key header."""
    apis = ",".join(RESTRICTED_APIS)
    return [f"--grpc-restricted-protocol={apis}:{ADMIN_KEY_NAME}={admin_key}",
            f"--http-restricted-api={apis}:{ADMIN_KEY_NAME}={admin_key}"]


def server_environment(install: TritonInstall, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment in which the Python backend stub finds this interpreter and its libpython.

    A system install (NGC image) brings its own environment: only the base is passed on.
    """
    env = dict(os.environ if base is None else base)
    if install.libs is None:
        return env
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    libdirs = [sysconfig.get_config_var("LIBDIR") or "", str(install.libs), env.get("LD_LIBRARY_PATH", "")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in libdirs if p)
    quiet_tensorflow(env)
    return env


def redact(cmd: list[str]) -> list[str]:
    """The command line with the admin key replaced, for logs."""
    return [a.rsplit("=", 1)[0] + "=***" if a.startswith(("--grpc-restricted-protocol=", "--http-restricted-api="))
            else a for a in cmd]


def free_ports(count: int) -> list[int]:
    """Ports that are free on 127.0.0.1 right now (for tests and parallel servers)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class TritonServer:
    """A tritonserver child process: ``start()`` waits until ready, ``stop()`` ends it and its stubs."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.process: subprocess.Popen | None = None
        self.runtime_dir: Path | None = None
        self.log_path: Path | None = None
        self.startup_s: float | None = None
        self.shm_prefix = ""

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> TritonServer:
        """Launch tritonserver and block until /v2/health/ready answers 200."""
        install = locate_triton(self.config.triton_home)
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="dermassist-triton-"))
        backend_dir = stage_backends(install, self.runtime_dir)
        self.log_path = self.runtime_dir / "tritonserver.log"
        self.shm_prefix = shm_prefix()
        cmd = server_command(install, self.config, backend_dir, self.shm_prefix)
        logger.info("starting tritonserver (%s profile, repository %s)", self.config.profile, self.config.repository)
        logger.debug("command: %s", " ".join(redact(cmd)))
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd, env=server_environment(install), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
            )
        try:
            self._wait_ready(self.process, started)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        logger.info("tritonserver ready in %.1f s: HTTP %s, gRPC %s", self.startup_s, self.config.http_address,
                    self.config.grpc_address)
        return self

    def _wait_ready(self, process: subprocess.Popen, started: float) -> None:
        url = self.config.ready_url
        deadline = started + self.config.startup_timeout_s
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                raise ServerStartupError(
                    f"tritonserver exited with code {code} before becoming ready; last lines of its log:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.2)
        raise ServerStartupError(
            f"tritonserver was not ready within {self.config.startup_timeout_s:.0f} s; last lines of its log:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the server log."""
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def send_signal(self, sig: int) -> None:
        """Forward a signal to the server (it stops gracefully on SIGINT/SIGTERM)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def wait(self) -> int:
        """Block until the server exits; return its exit code."""
        return self.process.wait() if self.process is not None else 0

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the server gracefully (SIGTERM), then kill whatever of its process group is left.

        A server stopped while it is still loading models can exit before its Python backend
        stubs do; they share its process group, so none outlives it. Its shared-memory regions go
        with it (a killed server leaves them in /dev/shm).
        """
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    logger.warning("tritonserver did not stop in %.0f s; killing it", timeout_s)
            _kill_group(self.process.pid)
            self.process.wait()
            if self.shm_prefix:
                removed = remove_shm_regions(self.shm_prefix)
                if removed:
                    logger.debug("removed %d shared-memory region(s) %s*", removed, self.shm_prefix)
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
            self.runtime_dir = None

    @property
    def pid(self) -> int:
        """The server's process id (ServerError before ``start``)."""
        if self.process is None:
            raise ServerError("tritonserver is not started; call start() first")
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """The server's exit code, None while it runs or before ``start``."""
        return None if self.process is None else self.process.poll()

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.process is not None and self.process.poll() is None


def embedded_server(repository: Path) -> TritonServer:
    """A TritonServer for ``repository`` on three free ports: ``with embedded_server(repo) as server: ...``."""
    http, grpc, metrics = free_ports(3)
    return TritonServer(ServerConfig(repository=Path(repository), http_port=http, grpc_port=grpc, metrics_port=metrics))
