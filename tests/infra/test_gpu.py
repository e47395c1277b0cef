"""GPU nodes: the NVIDIA driver built and, on real GPUs, loaded and listing the GPU."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import in_group


def test_driver_built_for_a_kernel(host: Any, groups: set[str]) -> None:
    in_group(groups, "gpu_nodes")
    assert host.exists("nvidia-smi")
    # DKMS puts the module under each kernel it built for (nvidia-current.ko on Debian).
    modules = host.run("find /lib/modules -path '*/updates/dkms/nvidia*.ko*'").stdout.split()
    assert modules, "DKMS built no NVIDIA module"


@pytest.mark.gpu
def test_driver_loaded(host: Any, groups: set[str]) -> None:
    in_group(groups, "gpu_nodes")
    assert host.file("/proc/driver/nvidia/version").exists


@pytest.mark.gpu
def test_nvidia_smi_lists_a_gpu(host: Any, groups: set[str]) -> None:
    in_group(groups, "gpu_nodes")
    listed = host.check_output("nvidia-smi -L")
    assert listed.startswith("GPU 0:"), listed
