"""A crafted pickle payload shared by the tests that check untrusted files are refused."""

from __future__ import annotations

import os
from pathlib import Path


class CodeRunningPayload:
    """Unpickling this object runs ``touch <marker>``: a test passes only if the marker is never created."""

    def __init__(self, marker: str | Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)
