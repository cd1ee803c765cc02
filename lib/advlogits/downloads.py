"""Downloads that fail instead of hanging: torchvision's and RobustBench's downloaders take no timeout of their own,
so every download runs inside `socket_timeout`, which sets the process-wide default for its duration."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

DOWNLOAD_TIMEOUT_S = 30.0  # per socket operation, so an unreachable mirror fails instead of hanging


@contextlib.contextmanager
def socket_timeout(seconds: float = DOWNLOAD_TIMEOUT_S) -> Iterator[None]:
    """Set the process-wide default socket timeout for a download, restoring the old one after.

    Examples::

        with socket_timeout():
            torchvision.datasets.FashionMNIST(root=str(home), train=True, download=True)
    """
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)
