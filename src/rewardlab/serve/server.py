"""Running the app under uvicorn: the listening socket, graceful shutdown on SIGTERM."""

from __future__ import annotations

import signal
import socket

from rewardlab.errors import ConfigError


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket listening on (host, port); port 0 takes a free one. Bound here rather than by
    uvicorn so that a busy port is a clear error before the model is loaded twice, and so that
    callers learn the port (``sock.getsockname()[1]``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def run_server(app, sock: socket.socket, *, access_log: bool = False, drain_timeout: float = 30.0,
               log_level: str = "info") -> int | None:
    """Serve ``app`` on ``sock`` until SIGTERM or SIGINT; return the signal number (or None).

    On the signal uvicorn stops accepting connections, lets requests in flight finish (at most
    ``drain_timeout`` seconds), then runs the app's shutdown, which drains the micro-batcher.
    uvicorn re-raises the signal once done; the handler installed here absorbs it so the command
    ends normally (exit status 0) after a clean drain.
    """
    import uvicorn

    if not drain_timeout >= 0:  # a negative timeout made uvicorn cut in-flight requests off with a bare 500
        raise ConfigError(f"drain_timeout must be >= 0 seconds, got {drain_timeout}")
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="on",
                            timeout_graceful_shutdown=drain_timeout)
    server = uvicorn.Server(config)
    received: list[int] = []
    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, lambda s, _frame: received.append(s)) for sig in handled}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return received[0] if received else None
