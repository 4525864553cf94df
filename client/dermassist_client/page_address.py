"""Whether the demo page can be served on a host and port, told before the models load or Gradio starts (Gradio's own
failure names its variable and ``launch()`` argument, not the flags); the page's owner, the client, checks it, and
``dermassist demo`` asks it in the words of its own settings."""
from __future__ import annotations

import socket


def _bind_error(host: str, port: int) -> str | None:
    """Why a TCP listener on ``host:port`` cannot be opened now (addresses reused, as servers do), else None."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
            probe.listen(1)
    except OSError as e:
        return e.strerror or str(e)
    except (UnicodeError, OverflowError) as e:  # a host name IDNA cannot encode; a port past 65535
        return str(e)
    return None


def page_address_problem(host: str, port: int, port_setting: str = "--port", host_setting: str = "--host") -> str | None:
    """Why the demo page cannot be served on ``host``:``port`` (a port outside 1-65535, a host that does not resolve,
    a port that cannot be listened on now), naming the settings that fix it; None when it can. The port can still be
    taken between this probe and the page's bind."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return f"demo --port must be a TCP port from 1 to 65535, got {port!r}; pass another {port_setting}"
    try:
        socket.getaddrinfo(host.strip("[]"), None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as e:
        return (f"demo --host {host} does not resolve ({getattr(e, 'strerror', None) or e}); expected a name or address "
                f"of this machine: pass another {host_setting}")
    problem = _bind_error(host, port)
    if problem is not None:
        return (f"cannot serve the demo page on {host}:{port}: {problem}; expected a free port on an address of this "
                f"machine: stop what holds port {port} or pass another {port_setting}")
    return None
