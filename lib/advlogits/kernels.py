"""Chapter kernels that cannot collide when several start at once: papermill's engine ``advlogits``.

jupyter_client gives a new kernel its TCP ports by binding free ones and releasing them for the kernel to take, so
a second kernel starting at that moment can take one first; the kernel then dies with "Address already in use"
("Kernel died before replying to kernel_info"), and so does the chapter. The build runs chapters side by side, so
its kernels talk over IPC sockets instead, socket files under a name of each kernel's own (jupyter_client's
default name, "kernel-ipc" in the working folder, would be every chapter's): no two kernels can pick the same.
Where IPC sockets do not exist (Windows) the kernel keeps TCP.

The engine is registered under ``papermill.engine`` (pyproject.toml) as `PAPERMILL_ENGINE`; ``papermill --engine
advlogits`` uses it: the build, `advlogits chapter` and the tests do.
This module is imported whenever papermill is, so it imports nothing heavy.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from papermill.engines import NBClientEngine
from traitlets import CaselessStrEnum, default

from .buildfiles import PAPERMILL_ENGINE

__all__ = ["PAPERMILL_ENGINE", "ChapterEngine", "IpcKernelManager"]

TRANSPORT = "tcp" if os.name == "nt" else "ipc"
SOCKET_PATH_MAX = 90  # a socket file's path, its "-<port>" suffix added, must fit in 107 bytes (Linux; 103 macOS)


def socket_stem() -> str:
    """A new kernel's socket files' common path: a random name in Jupyter's runtime folder (with the connection
    files), or in the temporary folder where that path would be too long for a socket."""
    name = f"kernel-{secrets.token_hex(8)}-ipc"
    folder = Path(jupyter_runtime_dir())
    if len(str(folder / name)) > SOCKET_PATH_MAX:
        folder = Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / name)


class IpcKernelManager(AsyncKernelManager):
    """nbclient's kernel manager with IPC sockets (`TRANSPORT`) as the default transport, at `socket_stem`."""

    transport = CaselessStrEnum(["tcp", "ipc"], default_value=TRANSPORT, config=True)

    @default("ip")
    def _ip_default(self) -> str:  # with IPC, the "ip" is the socket files' path, the port their suffix
        return socket_stem() if self.transport == "ipc" else super()._ip_default()


class ChapterEngine(NBClientEngine):
    """papermill's nbclient engine, its kernels started by `IpcKernelManager`."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        return super().execute_managed_notebook(nb_man, kernel_name, kernel_manager_class=IpcKernelManager, **kwargs)
