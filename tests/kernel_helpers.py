"""Jupyter kernels for the suite: nbval's and the learner-notebook test's.

Over TCP, jupyter_client picks free ports by binding port 0 and closing the socket; the kernel
binds them a moment later, and under two xdist workers (nbval on one, a learner notebook or a
torch.distributed test on the other) another process can take a port in between: the kernel then
dies with ``Address already in use`` before replying to kernel_info. On POSIX the suite's kernels
talk over Unix-domain sockets instead, which have no ports to race for; each kernel gets its own
folder, with an absolute path, since the kernel and the client run in different folders.
"""
import os
import shutil
import tempfile

from jupyter_client.manager import KernelManager


class IPCKernelManager(KernelManager):
    """A KernelManager whose kernel talks over Unix-domain sockets in a folder of its own."""

    def __init__(self, **kwargs):
        kwargs.setdefault("transport", "ipc")
        if kwargs["transport"] == "ipc" and "ip" not in kwargs:
            self._ipc_dir = tempfile.mkdtemp(prefix="saelab-kernel-")
            kwargs["ip"] = os.path.join(self._ipc_dir, "k")
        super().__init__(**kwargs)

    def cleanup_connection_file(self):
        # Called at shutdown only, not at restart (which reuses the sockets' folder).
        super().cleanup_connection_file()
        if getattr(self, "_ipc_dir", None):
            shutil.rmtree(self._ipc_dir, ignore_errors=True)


SUITE_KERNEL_MANAGER = IPCKernelManager if os.name == "posix" else KernelManager
