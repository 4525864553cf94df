"""The process limits tritonserver and the guard are started under (open files, file size): raised where the hard
limit allows, refused by name where it is too low."""
from __future__ import annotations

import logging
import resource

from .errors import ConfigError

logger = logging.getLogger(__name__)

#: The fewest open files a start is allowed: tritonserver holds about 75 serving the release's eight Python steps,
#: and the guard one for each client connection. Under 64, tritonserver died at its first connections ("Too many open
#: files" in its log alone) and the guard restarted it for ever (failure audit 2).
MIN_OPEN_FILES = 1024
#: The soft limit is raised toward the hard one up to this many (tritonserver and its steps inherit it).
WANTED_OPEN_FILES = 65536


def _raise_soft(which: int, cap: int | None = None) -> tuple[int, int]:
    """Raise the soft limit ``which`` to its hard limit (at most ``cap``) where it is lower; (soft, hard) then."""
    soft, hard = resource.getrlimit(which)
    unlimited = resource.RLIM_INFINITY
    wanted = hard if cap is None else cap if hard == unlimited else min(hard, cap)
    if soft != unlimited and (wanted == unlimited or soft < wanted):
        try:
            resource.setrlimit(which, (wanted, hard))
            logger.debug("limit %d raised from %d to %s (hard limit %s)", which, soft, wanted, hard)
            soft = wanted
        except (ValueError, OSError) as e:
            logger.debug("limit %d not raised from %d: %s", which, soft, e)
    return soft, hard


def raise_open_files() -> int:
    """Raise this process's soft RLIMIT_NOFILE toward its hard limit (at most WANTED_OPEN_FILES) and return it;
    ConfigError when even that is under MIN_OPEN_FILES."""
    soft, hard = _raise_soft(resource.RLIMIT_NOFILE, WANTED_OPEN_FILES)
    unlimited = resource.RLIM_INFINITY
    if soft != unlimited and soft < MIN_OPEN_FILES:
        shown = "unlimited" if hard == unlimited else str(hard)
        raise ConfigError(
            f"this process may open at most {soft} files (RLIMIT_NOFILE; hard limit {shown}); tritonserver and the "
            f"guard need at least {MIN_OPEN_FILES} (tritonserver alone holds about 75, the guard one per client "
            "connection): raise it, e.g. `ulimit -n 65536` in the shell that starts it, `--ulimit nofile=65536:65536` "
            "for `docker run` (`ulimits: nofile:` in docker-compose.yml), LimitNOFILE=65536 in a systemd unit")
    return soft


#: The smallest file-size limit a start is allowed: tritonserver's shared-memory regions are files under /dev/shm that
#: grow with each batch's tensors (hundreds of MiB for 32 large pictures). Under 2 MB tritonserver started, then failed
#: every inference ("Failed to increase the shared memory pool size ... File too large"), and the guard waited for
#: ever; under 30 kB the start ended in a traceback, its run folder left behind (failure audit 8).
MIN_FILE_BYTES = 1 << 30


def raise_file_size() -> int | None:
    """Raise this process's soft RLIMIT_FSIZE to its hard limit and return it (None: unlimited); ConfigError when even
    that is under MIN_FILE_BYTES."""
    soft, _ = _raise_soft(resource.RLIMIT_FSIZE)
    if soft == resource.RLIM_INFINITY:
        return None
    if soft < MIN_FILE_BYTES:
        raise ConfigError(
            f"this process may write files of at most {soft:,} bytes (RLIMIT_FSIZE, `ulimit -f`); tritonserver's "
            f"shared-memory regions (files under /dev/shm) need at least {MIN_FILE_BYTES:,}: start it without that "
            "limit (`ulimit -f unlimited` in the shell that starts it, or the service manager's LimitFSIZE=infinity)")
    return soft
