"""Pick the device: auto means cuda, then mps, then cpu."""

from __future__ import annotations

import torch

from .errors import ConfigError


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.insert(0, "mps")
    return devices


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if "mps" in available_devices():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device must be auto, cpu, cuda or mps; got {name!r}")
    if name not in available_devices():
        raise ConfigError(f"device {name!r} is not available on this machine; use auto or cpu")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """'CPU (2 threads)' or the GPU's name, for display."""
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "GPU: Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"
