"""The device a latency figure is valid for: the CPU model or the CUDA device's name."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def device_name(device: str = "cpu") -> str:
    """The CPU model (``/proc/cpuinfo``) or the CUDA device's name: what a table is valid for."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("latency device is cuda but no CUDA device is available")
        return torch.cuda.get_device_name(dev)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
