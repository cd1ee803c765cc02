"""Chapter kernels that cannot collide when several start at once: papermill's engine ``advlogits``.

jupyter_client gives a new kernel its TCP ports by binding free ones and releasing them for the kernel to take, so
a second kernel starting at that moment can take one first; the kernel then dies with "Address already in use"
("Kernel died before replying to kernel_info"), and so does the chapter. The build runs chapters side by side, so
its kernels talk over IPC sockets instead, files named after each kernel's own connection file: no two kernels can
pick the same. Where IPC sockets do not exist (Windows) the kernel keeps TCP.

The engine is registered under ``papermill.engine`` (pyproject.toml) as `PAPERMILL_ENGINE`; ``papermill --engine
advlogits`` uses it: the build, `advlogits chapter` and the tests do.
This module is imported whenever papermill is, so it imports nothing heavy.
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from papermill.engines import NBClientEngine
from traitlets import CaselessStrEnum

from .buildfiles import PAPERMILL_ENGINE

__all__ = ["PAPERMILL_ENGINE", "ChapterEngine", "IpcKernelManager"]

TRANSPORT = "tcp" if os.name == "nt" else "ipc"


class IpcKernelManager(AsyncKernelManager):
    """nbclient's kernel manager with IPC sockets (`TRANSPORT`) as the default transport."""

    transport = CaselessStrEnum(["tcp", "ipc"], default_value=TRANSPORT, config=True)


class ChapterEngine(NBClientEngine):
    """papermill's nbclient engine, its kernels started by `IpcKernelManager`."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        return super().execute_managed_notebook(nb_man, kernel_name, kernel_manager_class=IpcKernelManager, **kwargs)
