"""Local TCP ports for the servers the CLI starts (the demo's dashboard)."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

__all__ = ["free_port_from", "port_free", "wait_until_serving"]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Can a server listen on ``host:port`` now?  (SO_REUSEADDR, as servers bind: a port
    left in TIME_WAIT counts as free, one with a listener does not.)"""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port_from(preferred: int, host: str = "127.0.0.1", tries: int = 20) -> int:
    """``preferred`` if free, else the next free port above it, else one the OS assigns."""
    for port in range(preferred, min(preferred + tries, 65536)):
        if port_free(port, host):
            return port
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_until_serving(url: str, alive: Callable[[], bool], timeout: float) -> bool:
    """Poll ``url`` until it answers HTTP 200 (True), the server dies or ``timeout`` seconds
    pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - http://127.0.0.1
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    return False
