"""Helpers shared by several test files: a crafted pickle payload and an internet check."""

from __future__ import annotations

import os
import socket
from pathlib import Path


class CodeRunningPayload:
    """Unpickling this object runs ``touch <marker>``: a test passes only if the marker is never created."""

    def __init__(self, marker: str | Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def online(host: str) -> bool:
    """True if ``host`` resolves: then a download would really start, and the offline tests do not apply."""
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True
