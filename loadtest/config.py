"""Typed, self-validating load-test settings (precedence: CLI flag > environment variable > default).

The same values reach the Locust processes through ``LOADTEST_*`` environment variables, so a
master and its workers (possibly on other hosts) run one scenario mix.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from dermassist.base.corpus import DEFAULT_CACHE_DIR, DEFAULT_SOURCE_DIR, SIZES, format_sizes, parse_sizes
from dermassist.base.errors import ImageCorpusError
from dermassist.base.paths import PROJECT_ROOT, SOURCE_REPOSITORY
from dermassist.base.pem import pem_problem
from dermassist.base.settings import Settings, flag_name, setting_names, variable_name
from dermassist_client.classes import MAX_BATCH_SIZE

from .errors import LoadtestConfigError
from .faults import SIGNALS

ENV_PREFIX = "LOADTEST_"
DEFAULT_REPORT_DIR = PROJECT_ROOT / "reports" / "loadtest"
FAULTS = ("", *SIGNALS)  # "": no fault
# preprocess.contract's CROP_MODEL and STEP_MODELS (the ensemble's steps, each a Python-backend stub on the embedded
# server). Copied, not imported: the Locust image ships this module without preprocess (tests/deploy checks it);
# tests/loadtest checks the copies are equal.
CROP_MODEL = "lesion_crop"
STEP_MODELS = ("prepare", "lesion_segmenter", CROP_MODEL, "lesion_classifier", "triage")
ENV_ONLY = flag_name(None)  # a setting `python -m loadtest.run` has no flag for: its LOADTEST_* variable sets it


@dataclass(frozen=True)
class ScenarioConfig(Settings):
    """What each Locust user sends: the scenario mix, batch size, deadline and image corpus."""

    env_prefix = ENV_PREFIX
    config_error = LoadtestConfigError

    single_weight: float = field(default=0.66, metadata=ENV_ONLY)
    batch_weight: float = field(default=0.33, metadata=ENV_ONLY)
    bad_share: float = 0.01
    batch_size: int = 8
    deadline_s: float = field(default=60.0, metadata=flag_name("--deadline"))
    think_time_s: float = field(default=0.0, metadata=ENV_ONLY)
    per_size: int = field(default=4, metadata=ENV_ONLY)
    # the sizes the source JPEGs are resized to ("WxH,WxH"), or "as-is": a site's own files (JPEG, PNG) unchanged
    sizes: str = field(default=format_sizes(SIZES), metadata=ENV_ONLY)
    image_source: Path = field(default=DEFAULT_SOURCE_DIR, metadata=ENV_ONLY)
    image_cache: Path = field(default=DEFAULT_CACHE_DIR, metadata=ENV_ONLY)
    # of a call that failed UNAVAILABLE (server healing), within deadline_s
    retries: int = field(default=5, metadata=ENV_ONLY)
    root_certificates: str = ""  # CA of the server's certificate: connect over TLS
    private_key: str = ""  # the client's key and certificate (PEM) for a server with mutual TLS; both or neither
    certificate_chain: str = ""
    # a run whose answers were NOT ASSESSABLE more often than this fails (1 never fails); the bundled corpus: 0
    max_not_assessable_share: float = 0.2

    def __post_init__(self) -> None:
        require_finite(self)
        names = functools.partial(setting_names, ScenarioConfig)
        for name in ("single_weight", "batch_weight"):
            if getattr(self, name) < 0:
                raise LoadtestConfigError(f"{names(name)} must be >= 0, got {getattr(self, name)}; set 0 or more")
        if self.single_weight + self.batch_weight <= 0:
            raise LoadtestConfigError(f"{names('single_weight')} + {names('batch_weight')} must be > 0; set at least "
                                      "one scenario weight")
        if not 0.0 <= self.bad_share < 1.0:
            raise LoadtestConfigError(f"{names('bad_share')} must lie in [0, 1), got {self.bad_share} (0.01 means 1%); "
                                      "pass another")
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise LoadtestConfigError(f"batch_size ({setting_names(ScenarioConfig, 'batch_size')}) must be 1 to "
                                      f"{MAX_BATCH_SIZE} (the ensemble's largest batch), got {self.batch_size}; set it "
                                      "between them")
        if not self.deadline_s > 0:
            raise LoadtestConfigError(f"{names('deadline_s')} must be a positive number of seconds, got "
                                      f"{self.deadline_s}; pass another")
        if self.think_time_s < 0:
            raise LoadtestConfigError(f"{names('think_time_s')} must be >= 0 seconds, got {self.think_time_s}; set 0 "
                                      "or more")
        if self.per_size < 1:
            raise LoadtestConfigError(f"{names('per_size')} must be at least 1, got {self.per_size}; set 1 or more")
        try:
            sizes = parse_sizes(self.sizes)
            if any(min(w, h) < 32 for w, h in sizes):
                raise ImageCorpusError(f"corpus sizes {self.sizes!r}: every side must be at least 32 pixels")
        except ImageCorpusError as e:
            raise LoadtestConfigError(f"{setting_names(ScenarioConfig, 'sizes')}: {e}") from e
        if self.retries < 0:
            raise LoadtestConfigError(f"{names('retries')} must be >= 0, got {self.retries}; set 0 or more")
        check_root_certificates(self)
        check_client_certificate(self)
        if not 0.0 <= self.max_not_assessable_share <= 1.0:
            raise LoadtestConfigError(
                f"max_not_assessable_share ({setting_names(ScenarioConfig, 'max_not_assessable_share')}) must lie in "
                f"[0, 1], got {self.max_not_assessable_share}: the share of answered images that may come back NOT "
                "ASSESSABLE (0.2 means 20%; 1 never fails a run)")
        if not Path(self.image_source).is_dir():
            raise LoadtestConfigError(
                f"image_source folder {self.image_source} does not exist; set {variable_name(ScenarioConfig, 'image_source')} "
                f"to a folder of real JPEGs, or unset it for the default ({DEFAULT_SOURCE_DIR})")
        object.__setattr__(self, "image_source", Path(self.image_source))
        object.__setattr__(self, "image_cache", Path(self.image_cache))

    def corpus_sizes(self) -> tuple[tuple[int, int], ...]:
        """The corpus sizes as (width, height) pairs; () for the source files as they are (``"as-is"``)."""
        return parse_sizes(self.sizes)

    def probabilities(self) -> dict[str, float]:
        """Share of calls per scenario name (they sum to 1)."""
        good = 1.0 - self.bad_share
        total = self.single_weight + self.batch_weight
        return {
            "single": good * self.single_weight / total,
            "batch": good * self.batch_weight / total,
            "bad_input": self.bad_share,
        }

    def mix_text(self) -> str:
        """The scenario mix as people read it, e.g. ``single 66.3%, batch 32.7%, bad_input 1.0%``."""
        return ", ".join(f"{k} {v:.1%}" for k, v in self.probabilities().items())

    def to_env(self) -> dict[str, str]:
        """The ``LOADTEST_*`` variables that reproduce this config in another process."""
        return {self.env_prefix + k.upper(): str(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class RunConfig(Settings):
    """How ``python -m loadtest.run`` drives Locust: users, ramp, duration, reports and server."""

    env_prefix = ENV_PREFIX
    config_error = LoadtestConfigError

    users: int = 4
    spawn_rate: float = 2.0
    run_time_s: int = field(default=60, metadata=flag_name("--run-time"))
    report_dir: Path = DEFAULT_REPORT_DIR
    repository: Path = SOURCE_REPOSITORY
    host: str = ""  # host:port of a running Triton gRPC endpoint; empty = start the embedded server
    fault: str = ""  # "kill" (SIGKILL) or "stop" (SIGSTOP) one stub of fault_model mid-run (embedded server only)
    fault_model: str = CROP_MODEL  # the step whose stub gets the fault: one of STEP_MODELS
    fault_at_s: float = field(default=10.0, metadata=flag_name("--fault-at"))
    admin_key_file: str = ""  # key of the restricted APIs of a --host server, to read its statistics

    def __post_init__(self) -> None:
        require_finite(self)
        names = functools.partial(setting_names, RunConfig)
        if self.users < 1:
            raise LoadtestConfigError(f"{names('users')} must be at least 1, got {self.users}; pass 1 or more")
        if not self.spawn_rate > 0:
            raise LoadtestConfigError(f"{names('spawn_rate')} must be a positive number of users a second, got "
                                      f"{self.spawn_rate}; pass another")
        if self.run_time_s < 1:
            raise LoadtestConfigError(f"{names('run_time_s')} must be at least 1 second, got {self.run_time_s}; pass "
                                      "1 or more")
        if self.host:
            check_grpc_host(self.host)
        if self.fault not in FAULTS:
            raise LoadtestConfigError(f"fault must be one of {', '.join(repr(f) for f in FAULTS)}, got {self.fault!r}")
        if self.fault_model not in STEP_MODELS:
            raise LoadtestConfigError(f"fault_model must name a step of the ensemble, one of {', '.join(STEP_MODELS)}; "
                                      f"got {self.fault_model!r}: set {setting_names(RunConfig, 'fault_model')} to one "
                                      "of them")
        if self.fault and self.host:
            raise LoadtestConfigError("a fault can only be injected into the embedded server; drop --host or --fault")
        if self.fault and not 0 < self.fault_at_s < self.run_time_s:
            raise LoadtestConfigError(f"{names('fault_at_s')} must lie inside the run (0, {self.run_time_s}) seconds, "
                                      f"got {self.fault_at_s}; pass another, or a longer {names('run_time_s')}")
        object.__setattr__(self, "report_dir", Path(self.report_dir))
        object.__setattr__(self, "repository", Path(self.repository))


def require_finite(config: Settings) -> None:
    """Refuse an infinite or NaN value in any float field of ``config`` (``float()`` parses "inf" and "nan")."""
    for f in fields(config):  # type: ignore[arg-type]  # every config here is a dataclass
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise LoadtestConfigError(f"{type(config).__name__}.{f.name} ({variable_name(type(config), f.name)}) must be a "
                                      f"finite number, got {value}; set a finite value or unset it (default "
                                      f"{f.default})")


# The PEM each file of a client certificate must hold, to catch a key and certificate given the wrong way round.
CLIENT_FILES = {"private_key": "private key", "certificate_chain": "certificate"}


def check_root_certificates(config: ScenarioConfig) -> None:
    """Refuse a root certificates file that cannot be read or holds no PEM certificate (the guard's own check)."""
    if not config.root_certificates:
        return
    problem = pem_problem(Path(config.root_certificates), "certificate")
    if problem is not None:
        raise LoadtestConfigError(
            f"root_certificates file {config.root_certificates} ({setting_names(ScenarioConfig, 'root_certificates')}) "
            f"{problem}; give the CA of the server's certificate (ca.crt, PEM)")


def check_client_certificate(config: ScenarioConfig) -> None:
    """Refuse half a client certificate (a key without its certificate or the reverse), a file that cannot be read or
    holds no PEM key or certificate, and a client certificate without TLS (no root certificates)."""
    given = {name: getattr(config, name) for name in CLIENT_FILES if getattr(config, name)}
    if not given:
        return
    if len(given) != len(CLIENT_FILES):
        (missing,) = set(CLIENT_FILES) - set(given)
        (present,) = given
        raise LoadtestConfigError(
            f"{variable_name(ScenarioConfig, present)} is set ({given[present]}) but "
            f"{variable_name(ScenarioConfig, missing)} is not: a client certificate for mutual TLS needs both the "
            f"private key and the certificate chain (PEM); set {setting_names(ScenarioConfig, missing)}, or unset both")
    if not config.root_certificates:
        raise LoadtestConfigError(
            f"a client certificate ({variable_name(ScenarioConfig, 'certificate_chain')}) is set but "
            f"{variable_name(ScenarioConfig, 'root_certificates')} is not: a client certificate is presented over TLS "
            "only; set it to the CA of the server's certificate (ca.crt)")
    for name, kind in CLIENT_FILES.items():
        problem = pem_problem(Path(given[name]), kind)
        if problem is not None:
            hint = "give a readable PEM file" if problem.startswith("cannot") else "were the key and the certificate swapped?"
            raise LoadtestConfigError(f"{name} file {given[name]} ({setting_names(ScenarioConfig, name)}) {problem}; {hint}")


def check_grpc_host(host: str) -> None:
    """Refuse anything but ``HOST:PORT`` (no scheme, a port in 1-65535) for Triton's gRPC endpoint."""
    if ":" not in host or "://" in host:
        raise LoadtestConfigError(f"host must be HOST:PORT of Triton's gRPC endpoint (no scheme), got {host!r}")
    name, port = host.rsplit(":", 1)
    if not name or (":" in name and not (name.startswith("[") and name.endswith("]"))):
        raise LoadtestConfigError(f"host must be HOST:PORT of Triton's gRPC endpoint, no scheme (an IPv6 address in "
                                  f"brackets: [::1]:8001), got {host!r}; e.g. triton.example.org:8001")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise LoadtestConfigError(f"host must be HOST:PORT of Triton's gRPC endpoint with a port in 1-65535, got "
                                  f"{host!r}; e.g. triton.example.org:8001")


def check_together(run: RunConfig, scenario: ScenarioConfig) -> None:
    """Refuse settings that are valid alone but not together (before any server starts)."""
    if scenario.root_certificates and not run.host:
        raise LoadtestConfigError(
            f"{variable_name(ScenarioConfig, 'root_certificates')} is set ({scenario.root_certificates}) but no "
            f"--host / {variable_name(RunConfig, 'host')}: the embedded server serves plain gRPC, so every call would "
            "fail; unset it, or pass --host HOST:PORT of a server that serves TLS")


def known_variables() -> tuple[str, ...]:
    """Every ``LOADTEST_*`` variable the load test reads (RunConfig's and ScenarioConfig's), sorted."""
    return tuple(sorted(variable_name(cls, f.name) for cls in (RunConfig, ScenarioConfig) for f in fields(cls)))


def check_variables(environ: Mapping[str, str]) -> None:
    """Refuse a ``LOADTEST_*`` variable that no setting reads (a typo such as LOADTEST_USER would be ignored)."""
    known = known_variables()
    unknown = sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known)
    if unknown:
        raise LoadtestConfigError(f"unknown load-test variable(s) {', '.join(unknown)}: no setting reads them; "
                                  f"rename or unset them (the known ones: {', '.join(known)})")

