"""Typed, self-validating settings of the guard (precedence: CLI > DERMASSIST_* variable > default)."""
from __future__ import annotations

import functools
import socket
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..base.errors import ConfigError
from ..base.paths import file_in_the_way
from ..base.pem import pem_problem
from ..base.server import bind_problem
from ..base.server_config import MAKE_A_KEY, read_secret_file
from ..base.settings import Settings, flag_name, setting_names
from .certificates import key_mismatch, validity_problem

# gRPC channel options that lift the message size limits (images and masks travel whole) between the guard and
# its own loopback tritonserver; the public front bounds what it receives (``max_request_mib``).
UNLIMITED_MESSAGES = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
MIB = 1024 * 1024
MAX_INFLIGHT_MIB = 1 << 20  # 1 TiB: a bound far over any machine's memory, so a typo is told

RECOVERY_MODES = ("reload", "restart")
RESTART_GRACE_S = 5.0  # a broken server gets this long to stop before its process group is killed
RECOVERY_CALL_S = 10.0  # deadline of the short calls of a recovery (the ensemble's readiness, the served versions)
MAX_GRPC_MS = 2**31 - 1  # gRPC keeps its millisecond options in a signed 32-bit int (about 24.8 days)
# The public port is this process's alone: gRPC sets SO_REUSEPORT by default, so a second ``serve`` on the same port
# would bind too and take half the clients (and their audit lines) instead of failing at start.
NO_REUSEPORT = ("grpc.so_reuseport", 0)
#: The shortest audit digest key taken: 32 characters of ``secrets.token_urlsafe`` are 192 bits.
MIN_DIGEST_KEY_CHARS = 32
_PEM_KINDS = {"tls_cert": "certificate", "tls_key": "private key", "tls_client_ca": "certificate"}


def audit_log_problem(destination: str) -> str | None:
    """Why the audit trail cannot be appended to ``destination`` as far as the file system's shape tells (a folder,
    a device, a pipe or socket, or a file where a folder should be); None when it can, or for "-" (stdout). A device
    keeps no trail (/dev/null drops every line, /dev/full fails every write, so every call would be refused); a named
    pipe blocks ``serve`` until a reader opens it and every call while the reader lags, and a torn line cannot be cut
    back off it (a log shipper reads stdout, or tails the file)."""
    if destination == "-":
        return None
    path = Path(destination)
    if path.is_dir():
        return "is a folder"
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = 0  # not there yet (made at open) or not looked at here: opening it says why
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file (/dev/null would keep no line, /dev/full would refuse every call)"
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return ("is a named pipe or socket, not a file (serve would wait for a reader, and every call while it lags); "
                "a log shipper reads - (stdout) or tails a file")
    blocking = file_in_the_way(path)
    return None if blocking is None else f"cannot be made: {blocking} is a file, not a folder"


def host_problem(host: str) -> str | None:
    """Why ``host`` (a name or an address, IPv6 with or without brackets) cannot be bound; None when it resolves."""
    try:
        socket.getaddrinfo(host.strip("[]"), None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as e:
        return f"does not resolve ({getattr(e, 'strerror', None) or e})"
    return None


def port_problem(host: str, port: int) -> str | None:
    """Why nothing can listen on ``host``:``port`` now (taken, or an address of another machine); None when it is
    free. A probe (``bind_problem``, the one tritonserver's ports get too): the port can still be taken between this
    check and the real bind."""
    error = bind_problem(host, port)
    return None if error is None else (error.strerror or str(error))


@dataclass(frozen=True)
class GuardConfig(Settings):
    """TLS of the public gRPC front, where the audit trail goes, and how faults are found and healed.

    ``tls_cert``/``tls_key`` turn TLS on; ``tls_client_ca`` adds mutual TLS (clients must present a
    certificate that CA signed). ``recovery`` is how a broken step is healed: ``reload`` the model
    through the repository API (seconds; see docs/operations.md), or ``restart`` tritonserver.
    """

    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    audit_log: str = "-"  # "-" = stdout, else a file the lines are appended to
    # A file holding a site secret (at least MIN_DIGEST_KEY_CHARS characters): the audit trail then records each
    # picture's HMAC-SHA256 under it (``hmac_sha256``) instead of its SHA-256, which anyone holding the picture computes
    audit_digest_key_file: Path | None = None
    recovery: str = "reload"
    # reloads leave Triton's unload of the broken instance hanging: restart after this many
    max_reloads: int = field(default=3, metadata=flag_name(None))
    # Deadline of a whole reload, however many models the fault names (the unload and load of each, the ensemble's
    # readiness and load): one Python step reloads in about 2 s and a GPU step in well under a minute; a model that
    # cannot load then falls back to a restart within this bound instead of waiting tritonserver's start-up timeout.
    reload_timeout_s: float = 60.0
    # Liveness turns false (and a log line says why) once the guard has been unready this long without healing: the
    # orchestrator then restarts the pod, which holds its GPU while it cannot serve. It must exceed the longest
    # normal recovery (``longest_recovery_s``: a reload that falls back to a restart), which the guard checks.
    max_unready_s: float = 600.0
    # Where nothing acts on a failed liveness probe (docker-compose restarts a container only when its process exits),
    # the guard stops itself then, exiting non-zero, so that the restart policy starts it afresh.
    exit_when_not_live: bool = False
    scan_interval_s: float = field(default=0.2, metadata=flag_name(None))  # how often the stubs are looked at
    canary_interval_s: float = 5.0  # a canary inference this often while all is well
    canary_timeout_s: float = 10.0
    # A canary that times out behind a client call Triton has worked on for less than this is "busy": one batch of
    # 32 large pictures answers nothing for minutes on a CPU. Held longer with no answer since, it is a hang.
    busy_limit_s: float = 300.0
    # longest a request waits for readiness while the guard recovers
    hold_s: float = field(default=30.0, metadata=flag_name(None))
    # On SIGTERM the front stops taking calls and gives those in flight this long to be answered (a batch of 32
    # takes about 13 s on two CPU cores, and calls queue behind it); keep it under the orchestrator's grace period.
    drain_s: float = 30.0
    # Largest request the public port reads: a batch of 32 phone JPEGs is a few tens of MiB, one uncompressed
    # 50-megapixel TIFF 150 MiB; beyond it gRPC refuses the call (RESOURCE_EXHAUSTED) before it is held in memory.
    max_request_mib: int = 256
    # Most bytes of inference requests the front holds at once: each costs the guard about four times its size while
    # it is parsed, hashed and forwarded (three 250 MiB calls held 3.6 GB), so a call that would pass it is refused
    # UNAVAILABLE (clients retry) instead of exhausting the memory. A call alone in flight always passes.
    max_inflight_mib: int = 1024
    # Close client connections after this many ms (0: never) so clients reconnect through the load
    # balancer and new pods get traffic; the grace lets calls in flight finish (Triton's flag names).
    grpc_max_connection_age: int = 0
    grpc_max_connection_age_grace: int = 0
    # Clients may ping (keepalive) this often while no data flows, during calls and between them: grpc-java and
    # grpc-go ping every 10 s at the most, the SDK every 30 s. A peer pinging faster is sent GOAWAY after two strikes
    # (gRPC's ping-flood guard); gRPC's default, one per 300 s, ended a long call of a client with keepalive on.
    grpc_min_ping_interval_ms: int = 5000

    def _check_certificates(self) -> None:
        """A ConfigError for an expired or not yet valid certificate, or a key of another certificate."""
        now = datetime.now(UTC)
        who_refuses = {"tls_cert": "every client would refuse the server's handshake",
                       "tls_client_ca": "the server would refuse every client certificate it signed"}
        for name, refused in who_refuses.items():
            path = getattr(self, name)
            problem = None if path is None else validity_problem(path, now, bundle=name == "tls_client_ca")
            if problem is not None:
                raise ConfigError(f"{name} file {path} {problem}; {refused}: pass a valid certificate to "
                                  f"{setting_names(GuardConfig, name)}")
        if self.tls_cert is not None and self.tls_key is not None:
            problem = key_mismatch(self.tls_cert, self.tls_key)
            if problem is not None:
                raise ConfigError(f"{problem}; pass the certificate's own key to {setting_names(GuardConfig, 'tls_key')}")

    def __post_init__(self) -> None:
        for name in ("tls_cert", "tls_key", "tls_client_ca"):
            value = getattr(self, name)
            if value is None:
                continue
            path = Path(value)
            object.__setattr__(self, name, path)
            if not path.is_file():
                raise ConfigError(f"{name} file {path} does not exist; pass the path of a PEM file to "
                                  f"{setting_names(GuardConfig, name)}")
            problem = pem_problem(path, _PEM_KINDS[name])
            if problem is not None:
                raise ConfigError(f"{name} file {path} {problem}; pass a PEM {_PEM_KINDS[name]} to "
                                  f"{setting_names(GuardConfig, name)} (openssl converts a DER one)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key go together (the server certificate and its private key); "
                              f"got tls_cert={self.tls_cert}, tls_key={self.tls_key}")
        self._check_certificates()
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("tls_client_ca (mutual TLS) needs tls_cert and tls_key too")
        names = functools.partial(setting_names, GuardConfig)
        if self.recovery not in RECOVERY_MODES:
            raise ConfigError(f"{names('recovery')} must be one of {', '.join(RECOVERY_MODES)}, got {self.recovery!r}")
        if isinstance(self.max_request_mib, bool) or not isinstance(self.max_request_mib, int) \
                or not 1 <= self.max_request_mib <= 2047:
            raise ConfigError(f"{names('max_request_mib')} must be a whole number of MiB from 1 to 2047 (gRPC's limit "
                              f"is under 2 GiB), got {self.max_request_mib!r}; pass one in that range")
        if isinstance(self.max_inflight_mib, bool) or not isinstance(self.max_inflight_mib, int) \
                or not 1 <= self.max_inflight_mib <= MAX_INFLIGHT_MIB:
            raise ConfigError(f"{names('max_inflight_mib')} must be a whole number of MiB from 1 to {MAX_INFLIGHT_MIB}, "
                              f"got {self.max_inflight_mib!r}; pass one in that range")
        if self.max_reloads < 0:
            raise ConfigError(f"{names('max_reloads')} must be >= 0, got {self.max_reloads}; set 0 or more")
        for name in ("scan_interval_s", "canary_interval_s", "canary_timeout_s", "busy_limit_s", "hold_s",
                     "drain_s", "reload_timeout_s", "max_unready_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{names(name)} must be a positive number of seconds, got {getattr(self, name)}; "
                                  "set another")
        if isinstance(self.grpc_min_ping_interval_ms, bool) or not isinstance(self.grpc_min_ping_interval_ms, int) \
                or not 1 <= self.grpc_min_ping_interval_ms <= MAX_GRPC_MS:
            raise ConfigError(f"{names('grpc_min_ping_interval_ms')} must be a whole number of milliseconds from 1 to "
                              f"{MAX_GRPC_MS}, got {self.grpc_min_ping_interval_ms!r}; pass one in that range")
        for name in ("grpc_max_connection_age", "grpc_max_connection_age_grace"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_GRPC_MS:
                raise ConfigError(f"{name} must be a whole number of milliseconds from 0 (unlimited) to {MAX_GRPC_MS} "
                                  f"(gRPC's 32-bit limit, about 24.8 days), got {value!r}; pass a smaller "
                                  f"{setting_names(GuardConfig, name)}")
        self._read_digest_key()
        if not self.audit_log:
            raise ConfigError("audit_log must be '-' (stdout) or a file path; the audit trail cannot be turned off")
        problem = audit_log_problem(self.audit_log)
        if problem is not None:
            raise ConfigError(f"audit_log {self.audit_log} {problem}; expected a file the audit lines are appended to: "
                              f"pass {setting_names(GuardConfig, 'audit_log')} a file path in a writable folder, or - for stdout")

    def _read_digest_key(self) -> None:
        """Read ``audit_digest_key_file`` into ``audit_digest_secret`` (None without one); a ConfigError for a file that
        cannot be read, is empty or holds too short a key. A value that names no file is not quoted: it may be the key
        itself, given where its file was expected."""
        secret = None
        if self.audit_digest_key_file is not None:
            path = Path(self.audit_digest_key_file)
            object.__setattr__(self, "audit_digest_key_file", path)
            flag = setting_names(GuardConfig, "audit_digest_key_file")
            if path.is_dir():
                raise ConfigError(f"audit_digest_key_file {path} is a folder; pass {flag} the path of a file holding "
                                  "the site's key")
            if not path.is_file():
                raise ConfigError(f"audit_digest_key_file names no file (a value of {len(str(path))} characters, not "
                                  f"shown: it may be the key itself); pass {flag} the path of a file holding the key, "
                                  "not the key")
            text = read_secret_file(path, "audit digest key")
            if len(text) < MIN_DIGEST_KEY_CHARS:
                raise ConfigError(f"the audit digest key in {path} is {len(text)} characters long; expected at least "
                                  f"{MIN_DIGEST_KEY_CHARS} (a short key can be found by trying keys against a picture "
                                  f"whose digest is known): make one with `{MAKE_A_KEY}` and pass its file to {flag}")
            secret = text.encode()
        object.__setattr__(self, "_digest_secret", secret)

    @property
    def audit_digest_secret(self) -> bytes | None:
        """The key the audit digests are made under (``audit_digest_key_file``'s text, stripped), or None: SHA-256."""
        return getattr(self, "_digest_secret", None)

    def longest_recovery_s(self, startup_timeout_s: float) -> float:
        """The longest a recovery may take while nothing is wrong with the host, from the moment readiness turns false:
        a canary that finds the fault, a reload (all its calls within ``reload_timeout_s``, whatever the number of
        models) and its canary, then the fallback restart (the old server's stop grace, a start up to
        ``startup_timeout_s``, a canary, the versions read), which may first wait for an admin load of the ensemble
        (its loads, then their undo, each within ``reload_timeout_s``)."""
        return (3 * self.reload_timeout_s + 3 * self.canary_timeout_s + RESTART_GRACE_S + startup_timeout_s
                + RECOVERY_CALL_S)

    def unready_bound_problem(self, startup_timeout_s: float) -> str | None:
        """Why ``max_unready_s`` would turn liveness false during a normal recovery (None when it would not): a
        healthy pod would be restarted in the middle of healing itself."""
        longest = self.longest_recovery_s(startup_timeout_s)
        if self.max_unready_s > longest:
            return None
        other_s = RECOVERY_CALL_S + RESTART_GRACE_S
        return (f"max_unready_s ({self.max_unready_s:g} s) must exceed the longest normal recovery, {longest:g} s (a "
                f"reload within reload_timeout_s {self.reload_timeout_s:g} s, an admin load and its undo within it "
                f"each, a restart within startup_timeout_s "
                f"{startup_timeout_s:g} s, three canaries of canary_timeout_s {self.canary_timeout_s:g} s and {other_s:g} "
                f"s of other calls), or liveness fails while the pod heals itself: pass a larger "
                f"{setting_names(GuardConfig, 'max_unready_s')} or a smaller {setting_names(GuardConfig, 'reload_timeout_s')}")

    def server_options(self) -> list[tuple[str, int]]:
        """gRPC server options of the front: the port its own (no SO_REUSEPORT), requests up to ``max_request_mib``,
        answers of any size, clients' keepalive pings taken during calls and between them at most once per
        ``grpc_min_ping_interval_ms``, connection ageing when asked."""
        options: list[tuple[str, int]] = [NO_REUSEPORT, ("grpc.max_send_message_length", -1),
                                          ("grpc.max_receive_message_length", self.max_request_mib * MIB),
                                          ("grpc.http2.min_ping_interval_without_data_ms", self.grpc_min_ping_interval_ms),
                                          ("grpc.keepalive_permit_without_calls", 1)]
        if self.grpc_max_connection_age:
            options.append(("grpc.max_connection_age_ms", self.grpc_max_connection_age))
        if self.grpc_max_connection_age_grace:
            options.append(("grpc.max_connection_age_grace_ms", self.grpc_max_connection_age_grace))
        return options

    @property
    def tls(self) -> bool:
        """Whether the front serves gRPC over TLS."""
        return self.tls_cert is not None

    @property
    def mutual_tls(self) -> bool:
        """Whether clients must present a certificate."""
        return self.tls_client_ca is not None
