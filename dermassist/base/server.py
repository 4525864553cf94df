"""Start, watch and stop ``tritonserver``: the binary shipped in the nvidia-pytriton wheel, or a system one."""
from __future__ import annotations

import errno
import fcntl
import importlib.util
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, ServerError, ServerStartupError
from .frameworks import quiet_tensorflow
from .launcher import ORPHANED
from .limits import raise_file_size, raise_open_files
from .repository import tuned_value_problems
from .server_config import ADMIN_KEY_NAME, RESTRICTED_APIS, ServerConfig, unservable_chars
from .settings import setting_names

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 40
REPORT_TAIL_LINES = 12  # the tail after Triton's own errors in a start-up failure
MAX_ERROR_LINES = 12
MAX_ERROR_CHARS = 2000
# A failed start's log is kept in the temporary folder (the run folder goes); the newest few only.
KEPT_LOG_PREFIX = "dermassist-tritonserver-"
KEPT_LOGS = 5
PORT_SETTLE_S = 2.0  # how long a port in use may take to come free before a start is refused
# A line of Triton's log (glog): severity, date, time, thread, file:line] message.
_GLOG = re.compile(r"^(?P<level>[IWEF])\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ (?P<source>[\w.]+:\d+)\] (?P<message>.*)$")
# Error lines Triton writes on every start of a host without a GPU (the CPU profile): not what went wrong.
_HARMLESS_ERRORS = (
    re.compile(r'^"CudaDriverHelper has not been initialized\."$'),
    re.compile(r'^"unable to create stream for [^:"]+: CUDA driver version is insufficient for CUDA runtime version"$'),
)
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


def private_shm_regions(prefix: str, shm_dir: Path = SHM_DIR) -> list[Path]:
    """Make the shared-memory regions named ``prefix*`` readable by their owner alone; return those it changed.

    The Python backend creates them mode 0644 (boost sets the mode; a umask does not change it), and they hold the
    decoded pixels of the last requests after their answers have gone: every local user could read patients' pictures
    (privacy audit, M4). Called once the server is ready (before any client's request) and again as it serves, for
    the regions a stub adds when it grows its memory."""
    def made_private(path: Path) -> bool:
        if not path.stat().st_mode & 0o077:
            return False
        path.chmod(0o600)
        return True

    return _each_region(prefix, shm_dir, made_private, "make private") if prefix else []


def _each_region(prefix: str, shm_dir: Path, act: Callable[[Path], bool], what: str) -> list[Path]:
    """``act`` on each shared-memory region named ``prefix*``; those it acted on (a region gone meanwhile is passed
    over, another OSError logged naming ``what`` was done)."""
    done: list[Path] = []
    for path in sorted(shm_dir.glob(f"{prefix}*")):
        try:
            if act(path):
                done.append(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            logger.warning("could not %s the shared-memory region %s: %s", what, path, e)
    return done


def remove_shm_regions(prefix: str, shm_dir: Path = SHM_DIR) -> list[Path]:
    """Delete the shared-memory regions named ``prefix*`` (a stopped server's); return those that went.

    A server and stubs that are killed never unlink their regions, and each holds a few hundred MiB of
    /dev/shm (the soak test lost 200-300 MiB per forced restart), so the launcher removes them.
    """
    if not prefix:
        raise ServerError("refusing to remove shared-memory regions without a name prefix")

    def removed(path: Path) -> bool:
        path.unlink()
        return True

    return _each_region(prefix, shm_dir, removed, "remove")


#: The run folder of one start, in the temporary folder: ``dermassist-triton-<random>``.
RUN_FOLDER_PREFIX = "dermassist-triton-"
#: In a run folder: a file its start holds locked (flock) for as long as the guard or tritonserver and its stubs
#: run (they inherit it), and the name prefix of its shared-memory regions.
OWNER_LOCK, SHM_PREFIX_FILE = "owner.lock", "shm-prefix"
_SHM_PREFIX = re.compile(r"dermassist-\d+-[0-9a-f]+-")


def hold_run_folder(folder: Path, prefix: str) -> int:
    """Lock ``folder`` as this start's for as long as the returned descriptor stays open anywhere (pass it on to
    tritonserver): ``remove_orphans`` removes only run folders whose lock it can take. The lock file is locked before
    it appears under its name, so no other start can find it unlocked; ``prefix`` names the start's regions."""
    (folder / SHM_PREFIX_FILE).write_text(prefix)
    partial = folder / f".{OWNER_LOCK}.partial"
    descriptor = os.open(partial, os.O_CREAT | os.O_WRONLY, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    os.rename(partial, folder / OWNER_LOCK)
    return descriptor


def remove_orphans(shm_dir: Path = SHM_DIR, tmp_dir: Path | None = None) -> list[Path]:
    """Remove the run folders, and the shared-memory regions they name, of starts whose processes are all gone: a
    guard and tritonserver killed together (the OOM killer, a SIGKILL) leave them, and nothing else removes them (a
    soak lost 44 MiB of /dev/shm and a folder each time). A folder is an orphan only when its lock (``hold_run_folder``)
    can be taken, which holds across PID namespaces and a pid used again (a restarted container's guard is PID 1
    again); a folder without one (an older start's) is left. The paths removed."""
    tmp_dir = Path(tempfile.gettempdir()) if tmp_dir is None else tmp_dir
    removed: list[Path] = []
    for folder in sorted(tmp_dir.glob(f"{RUN_FOLDER_PREFIX}*")):
        try:
            if folder.is_symlink() or not folder.is_dir() or folder.lstat().st_uid != os.getuid():
                continue
            descriptor = os.open(folder / OWNER_LOCK, os.O_RDONLY)
        except OSError:
            continue  # no lock file: an older start's folder, or one not this user's
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live start holds it
        finally:
            os.close(descriptor)
        prefix = (folder / SHM_PREFIX_FILE).read_text().strip() if (folder / SHM_PREFIX_FILE).is_file() else ""
        if _SHM_PREFIX.fullmatch(prefix):
            removed.extend(remove_shm_regions(prefix, shm_dir))
        try:
            shutil.rmtree(folder)
            removed.append(folder)
        except OSError as e:
            logger.warning("could not remove %s, left by a start whose processes are gone: %s", folder, e)
    if removed:
        logger.info("removed %d run folder(s) and shared-memory region(s) of earlier starts whose processes are gone",
                    len(removed))
    return removed


# Triton 2.51's ``--metrics-config=<setting>=<value>``: summaries of each model's latencies (``nv_inference_*_summary_us``
# with quantiles) beside the counters, which give only means.
METRICS_CONFIG = ("--metrics-config=summary_latencies=true",)


def server_command(install: TritonInstall, config: ServerConfig, backend_dir: Path, shm_name_prefix: str = "",
                   restrict_inference: bool = False) -> list[str]:
    """The tritonserver command line for a config (and, if given, the prefix of its shared-memory regions);
    ``restrict_inference``: inference too needs the admin key (``restricted_flags``)."""
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
        # latency quantiles (p50/p90/p95/p99 of request, queue and compute time per model), not only counters
        *METRICS_CONFIG,
        f"--log-verbose={config.log_verbose}",
        *restricted_flags(config.admin_key, restrict_inference),
        *([f"--backend-config=python,shm-region-prefix-name={shm_name_prefix}"] if shm_name_prefix else []),
    ]
    if config.profile == "embedded":
        cmd.append("--model-config-name=embedded")
    return cmd


def restricted_flags(admin_key: str, restrict_inference: bool = False) -> list[str]:
    """Flags that put every API but inference, health and metadata behind the admin key header, and inference too
    when ``restrict_inference`` (a server behind the guard: its loopback ports are reachable by every local user, whose
    inference would leave no audit line; the guard's own key is that run's random one)."""
    apis = ",".join((*RESTRICTED_APIS, "inference") if restrict_inference else RESTRICTED_APIS)
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


def bind_problem(host: str, port: int) -> OSError | None:
    """The error a TCP listener on ``host:port`` would meet right now (e.g. the port is in use), or None.

    The probe reuses addresses as servers do, so a port left in TIME_WAIT by a stopped server counts as free.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
            probe.listen(1)
    except OSError as e:  # socket.gaierror too: a host that does not resolve
        return e
    except (UnicodeError, OverflowError) as e:  # a host name IDNA cannot encode; a port past 65535
        return OSError(errno.EINVAL, str(e))
    return None


def server_ports(config: ServerConfig) -> list[tuple[str, str, int]]:
    """The (field, host, port) of each listener tritonserver opens for ``config``: HTTP, gRPC and metrics."""
    return [("http_port", config.host, config.http_port), ("grpc_port", config.host, config.grpc_port),
            ("metrics_port", config.metrics_host or config.host, config.metrics_port)]


# Linux's sysctl net.ipv4.ip_unprivileged_port_start: the first port a process without privileges may bind (1024 by
# default; containers and tuned hosts lower it, to 0 in some runtimes).
UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


def unprivileged_port_start() -> int:
    """The first port a process without privileges may bind on this host (1024 where the system does not say)."""
    try:
        return int(UNPRIVILEGED_PORT_START.read_text().strip())
    except (OSError, ValueError):
        return 1024


def _ports(ports: Sequence[int]) -> str:
    return f"{'port' if len(ports) == 1 else 'ports'} {' and '.join(map(str, ports))}"


def bind_fixes(failed: Sequence[tuple[int, int | None]]) -> list[str]:
    """The fixes for ports that could not be bound, from each (port, errno): stop what holds a taken one; a port
    below the kernel's first unprivileged one needs privileges; any other refusal is a security policy's. The one
    wording of every message that tells a port it cannot bind (``port_message``, the guard's ``bind_failure``)."""
    start = unprivileged_port_start()
    taken = [port for port, code in failed if code != errno.EACCES]
    low = [port for port, code in failed if code == errno.EACCES and port < start]
    denied = [port for port, code in failed if code == errno.EACCES and port >= start]
    fixes = []
    if taken:
        held = " or ".join(f"sport = :{port}" for port in taken)
        which = f"`ss -ltnp '{held}'`" if len(taken) == 1 else f"`ss -ltnp '( {held} )'`"
        fixes.append(f"stop what holds {_ports(taken)} (another `dermassist serve`? {which} shows which)")
    if low:
        fixes.append(f"{_ports(low)} below {start} {'needs' if len(low) == 1 else 'need'} privileges (root or "
                     f"CAP_NET_BIND_SERVICE): use a port from {start} up")
    if denied:
        fixes.append(f"binding {_ports(denied)} was denied by a security policy (SELinux or AppArmor? its audit log "
                     "says which): allow it there")
    return fixes


def port_message(name: str, host: str, port: int, error: OSError) -> str:
    """Why ServerConfig's port field ``name`` cannot be bound on ``host``, and the fix (``bind_fixes``), naming its
    flag and variable."""
    host_field = "metrics_host" if name == "metrics_port" else "host"
    fix = (bind_fixes([(port, error.errno)])[0] + "; or" if error.errno in (errno.EADDRINUSE, errno.EACCES) else
           f"check {setting_names(ServerConfig, host_field)} (an address of this machine) or")
    return (f"{name.replace('_', ' ')} {port} cannot be bound on {host or 'every address'} ({error}); "
            f"{fix} pass another {setting_names(ServerConfig, name)}")


def prune_kept_logs(folder: Path, keep: int = KEPT_LOGS) -> list[Path]:
    """Delete all but the ``keep`` newest logs of failed starts in ``folder`` (a crash-looping service keeps one per
    start); the ones deleted."""
    logs = sorted(folder.glob(f"{KEPT_LOG_PREFIX}*.log"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in logs[keep:]:
        old.unlink(missing_ok=True)
    return logs[keep:]


def check_tuned_values(repository: Path) -> None:
    """ConfigError when the steps of ``repository`` would not run on their tuned values (``tuned_value_problems``):
    a missing or unreadable file would have Triton serve the contract's defaults, REFER's threshold among them, and a
    value its step refuses would have Triton fail to load that step."""
    problems = tuned_value_problems(repository)
    if problems:
        raise ConfigError(f"model repository {repository} cannot give its steps their tuned values: {'; '.join(problems)}; "
                          "its steps would run on defaults the release was not tuned to (REFER's threshold among them) "
                          "or, for a value out of range, not load: run "
                          f"`dermassist models --repository {repository}` to export the release again (--force where "
                          "it serves imported models), or mend the file")


def check_temporary_folder() -> None:
    """ConfigError when tritonserver's run folder (under the temporary folder) would hold a path it cannot run its
    Python steps under (``unservable_chars``)."""
    folder = Path(tempfile.gettempdir())
    unservable = unservable_chars(folder)
    if unservable:
        raise ConfigError(f"the temporary folder {folder} has {', '.join(map(repr, unservable))} in its path, which "
                          "tritonserver 2.51 cannot run its Python steps under (its run folder goes there); set TMPDIR to "
                          "a folder of plain ASCII without spaces")


def check_ports(config: ServerConfig, settle_s: float | None = None) -> None:
    """Raise ConfigError for a port tritonserver could not bind (the metrics port is the public one it binds).

    tritonserver opens its metrics port only after its models are loaded: a taken one made it exit after
    becoming ready, and the guard restarted it for ever. Checked before it starts, the command stops at once.
    A port in use gets ``settle_s`` (PORT_SETTLE_S) to come free: a restart checks the instant the stopped
    server's processes were killed.
    """
    deadline = time.monotonic() + (PORT_SETTLE_S if settle_s is None else settle_s)
    for name, host, port in server_ports(config):
        error = bind_problem(host, port)
        while error is not None and error.errno == errno.EADDRINUSE and time.monotonic() < deadline:
            time.sleep(0.1)
            error = bind_problem(host, port)
        if error is not None:
            raise ConfigError(port_message(name, host, port, error))


def _capped(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + " [...]"


def _readable(line: str) -> str:
    """A Triton log line with its quoted message unescaped (a Python traceback on lines of its own)."""
    match = _GLOG.match(line)
    if match and match["message"].startswith('"') and match["message"].endswith('"'):
        message = match["message"][1:-1].replace("\\n", "\n").replace('\\"', '"')
        line = line[:match.start("message")] + message
    return line


def _is_error(line: str) -> bool:
    """Whether a log line says what went wrong: a Triton error (E/F, but not the CPU host's CUDA ones), a Python
    stub's failure, a config that does not parse (protobuf's error), or tritonserver's last word ("error: ...")."""
    match = _GLOG.match(line)
    if match is None:
        return line.startswith(("error: ", "[libprotobuf ERROR"))
    if match["level"] in "EF":
        return not any(p.match(match["message"]) for p in _HARMLESS_ERRORS)
    return match["source"].startswith("pb_stub.cc:") and "Failed" in match["message"]


def _without_repeated_traceback(line: str, seen: set[str]) -> str:
    """``line`` less its Python backend traceback ("At: ...") when an earlier line carried the same one."""
    head, marker, trace = line.partition("\n\nAt:\n")
    if not marker:
        return line
    key = trace.rstrip("\n ;")  # Triton ends some copies with ";"
    if key in seen:
        return head + " (traceback as above)"
    seen.add(key)
    return line


def triton_errors(log: str, limit: int = MAX_ERROR_LINES) -> list[str]:
    """Triton's own error lines in a whole log (model load failures, Python backend exceptions, a port in use),
    oldest first, readable, at most ``limit`` (then one line saying how many more); a Python traceback written
    straight to the log counts as one line, and a backend traceback is shown once."""
    found: list[str] = []
    traceback: list[str] = []
    seen: set[str] = set()
    for line in log.splitlines():
        if traceback:  # a traceback runs to its first line that is not indented: the exception
            traceback.append(line)
            if line and not line[0].isspace():
                found.append(_capped("\n".join(traceback)))
                traceback = []
        elif line.startswith("Traceback (most recent call last):"):
            traceback = [line]
        elif _is_error(line):
            found.append(_capped(_without_repeated_traceback(_readable(line), seen)))
    if traceback:
        found.append(_capped("\n".join(traceback)))
    if len(found) > limit:
        found = found[:limit] + [f"... and {len(found) - limit} more error line(s)"]
    return found


def log_tail(log: str, lines: int) -> list[str]:
    """The last ``lines`` lines of a log that say something: no blank lines, no tables (rules, rows, headings)."""
    def says_something(line: str) -> bool:
        match = _GLOG.match(line)
        return bool(line.strip()) and not line.startswith(("+", "|")) and not (match and not match["message"].strip())

    return [line for line in log.splitlines() if says_something(line)][-lines:]


def startup_report(headline: str, log: str, kept_log: Path | None = None, timeout_hint: str = "") -> str:
    """The message of a failed start: ``headline``, Triton's own errors from the whole log, a short tail, and where the
    full log was kept; ``timeout_hint`` (how to wait longer) goes in when the log names no error."""
    errors = triton_errors(log)
    parts = [headline]
    if errors:
        parts.append("Triton's errors:\n" + "\n".join(errors))
    elif timeout_hint:
        parts.append(timeout_hint)
    tail = log_tail(log, REPORT_TAIL_LINES)
    parts.append("last lines of its log:\n" + "\n".join(tail) if tail else "its log is empty")
    if kept_log is not None:
        parts.append(f"full log: {kept_log}")
    return "\n".join(parts)


def exit_hint(code: int) -> str:
    """What an exit code of the launched tritonserver tells beyond its number ("" when nothing)."""
    if code == ORPHANED:
        return " (its launcher found the thread that started it already gone, so it did not start tritonserver)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            return f" (killed by signal {-code})"
        return f" (killed by signal {-code}, {name})"
    return ""


def with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` run through ``launcher.py``, so that it is stopped (SIGTERM) when this process dies, without running
    Python between fork and exec here (see the launcher's docstring)."""
    return [sys.executable, "-I", str(Path(__file__).with_name("launcher.py")), str(os.getpid()), *cmd]


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class TritonServer:
    """A tritonserver child process: ``start()`` waits until ready, ``stop()`` ends it and its stubs."""

    def __init__(self, config: ServerConfig, restrict_inference: bool = False) -> None:
        self.config = config
        self.restrict_inference = restrict_inference  # inference needs the admin key too (``restricted_flags``)
        self.process: subprocess.Popen | None = None
        self.runtime_dir: Path | None = None
        self._owner_lock: int | None = None  # this start's hold on its run folder (hold_run_folder)
        self.log_path: Path | None = None
        self.startup_s: float | None = None
        self.shm_prefix = ""
        self.kept_log: Path | None = None  # the full log of the last failed start, kept after stop
        # set when its owner ends its ``with`` block: a guard it was given must not heal it from then on (a Ctrl-C
        # that cut the guard's own stop short had it restart the tritonserver being stopped)
        self.closing = False
        # start and stop one at a time: an owner's stop waits for a start in progress (a guard's restart) to end, then
        # stops what it started, and a start asked for once the owner is closing is refused
        self._lifecycle = threading.RLock()

    def __enter__(self) -> TritonServer:
        self.closing = False
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.closing = True
        self.stop()

    def start(self) -> TritonServer:
        """Check its repository's tuned values, its temporary folder, the open-file and file-size limits (raised where
        they may be) and its ports, launch tritonserver and block until /v2/health/ready answers 200 (a ServerError
        once its owner is closing it)."""
        with self._lifecycle:
            if self.closing:
                raise ServerError("tritonserver is being stopped by its owner (the end of its with block): it is not "
                                  "started again")
            return self._start()

    def _start(self) -> TritonServer:
        check_tuned_values(self.config.repository)
        check_temporary_folder()
        raise_open_files()
        raise_file_size()
        check_ports(self.config)
        install = locate_triton(self.config.triton_home)
        remove_orphans()
        self.runtime_dir = Path(tempfile.mkdtemp(prefix=RUN_FOLDER_PREFIX))
        self.shm_prefix = shm_prefix()
        self._owner_lock = hold_run_folder(self.runtime_dir, self.shm_prefix)
        backend_dir = stage_backends(install, self.runtime_dir)
        self.log_path = self.runtime_dir / "tritonserver.log"
        cmd = server_command(install, self.config, backend_dir, self.shm_prefix, self.restrict_inference)
        logger.info("starting tritonserver (%s profile, repository %s)", self.config.profile, self.config.repository)
        logger.debug("command: %s", " ".join(redact(cmd)))
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            try:
                self.process = subprocess.Popen(
                    with_parent(cmd), env=server_environment(install), stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=(self._owner_lock,),
                )
            except OSError as e:
                shutil.rmtree(self.runtime_dir, ignore_errors=True)
                self._release_run_folder()
                raise ServerError(f"cannot start tritonserver through its launcher: this Python ({sys.executable}) "
                                  f"cannot be run ({e.strerror or e}); expected an interpreter this user may execute: "
                                  "run serve with a Python installation it can (the one its packages are in)") from e
        try:
            self._wait_ready(self.process, started)
        except BaseException:
            self.stop()
            raise
        private_shm_regions(self.shm_prefix)
        self.startup_s = time.monotonic() - started
        logger.info("tritonserver ready in %.1f s: HTTP %s, gRPC %s", self.startup_s, self.config.http_address,
                    self.config.grpc_address)
        return self

    def _wait_ready(self, process: subprocess.Popen, started: float) -> None:
        url = self.config.ready_url
        deadline = started + self.config.startup_timeout_s
        while time.monotonic() < deadline:
            if self.closing:  # the owner is stopping it: its stop, waiting for this start, need not wait out the start
                raise ServerError("tritonserver was stopped by its owner while it started (the end of its with block)")
            code = process.poll()
            if code is not None:
                raise self._startup_error(f"tritonserver exited with code {code} before becoming ready"
                                          f"{exit_hint(code)}")
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.2)
        timeout_s = self.config.startup_timeout_s
        hint = (f"the log names no error: tritonserver may need longer on this host; raise "
                f"{setting_names(ServerConfig, 'startup_timeout_s')} (now {timeout_s:g} s)")
        raise self._startup_error(f"tritonserver was not ready within {timeout_s:g} s", hint)

    def _startup_error(self, headline: str, timeout_hint: str = "") -> ServerStartupError:
        """The error of a failed start: Triton's errors from its whole log first, then a short tail; the log is kept
        (the run folder goes with ``stop``)."""
        return ServerStartupError(startup_report(headline, self._log_text(), self._keep_log(), timeout_hint))

    def _log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def _keep_log(self) -> Path | None:
        """Copy the log out of the run folder, which ``stop`` deletes, into a new private file in the temporary
        folder (the one this server kept at an earlier failed start goes); None if there is none or it fails."""
        if self.log_path is None or not self.log_path.exists():
            return None
        if self.kept_log is not None:
            self.kept_log.unlink(missing_ok=True)
            self.kept_log = None
        try:
            handle, name = tempfile.mkstemp(prefix=KEPT_LOG_PREFIX, suffix=".log")
            with os.fdopen(handle, "wb") as kept, open(self.log_path, "rb") as log:
                shutil.copyfileobj(log, kept)
        except OSError as e:
            logger.warning("could not keep tritonserver's log %s: %s", self.log_path, e)
            return None
        self.kept_log = Path(name)
        prune_kept_logs(self.kept_log.parent)
        return self.kept_log

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the server log; never raises (out of file descriptors, the guard's recovery had stopped
        at this look and begun again every second)."""
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        try:
            return "\n".join(self._log_text().splitlines()[-lines:])
        except OSError as e:
            return f"(tritonserver's log {self.log_path} cannot be read: {e.strerror or e})"

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
        with self._lifecycle:
            self._stop(timeout_s)

    def _stop(self, timeout_s: float) -> None:
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
                    logger.debug("removed %d shared-memory region(s) %s*", len(removed), self.shm_prefix)
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
            self.runtime_dir = None
        self._release_run_folder()

    def _release_run_folder(self) -> None:
        """Close this start's hold on its run folder (``hold_run_folder``), once."""
        if self._owner_lock is not None:
            os.close(self._owner_lock)
            self._owner_lock = None

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
