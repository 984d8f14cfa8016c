"""The suite's Jupyter kernels talk over Unix-domain sockets (tests/kernel_helpers.py)."""
import os

import pytest
from kernel_helpers import SUITE_KERNEL_MANAGER

pytestmark = pytest.mark.skipif(os.name != "posix", reason="Unix-domain sockets need POSIX")


def test_nbval_starts_its_kernels_with_the_suite_manager(pytestconfig):
    if not pytestconfig.pluginmanager.hasplugin("nbval"):
        pytest.skip("nbval is not installed")
    import nbval.kernel

    assert nbval.kernel.KernelManager is SUITE_KERNEL_MANAGER


def test_a_kernel_runs_code_over_ipc_and_leaves_no_socket_files(tmp_path):
    km = SUITE_KERNEL_MANAGER(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path))  # the kernel runs in another folder than the client
    folder = os.path.dirname(km.ip)
    try:
        assert km.transport == "ipc" and os.path.isabs(km.ip)
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive("import os; print(os.getcwd())", timeout=60)
        assert reply["content"]["status"] == "ok"
        kc.stop_channels()
        assert any(name.startswith("k-") for name in os.listdir(folder))
    finally:
        km.shutdown_kernel(now=True)
    assert not os.path.exists(folder)
