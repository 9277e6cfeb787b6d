"""Pick the device (auto means cuda, then mps, then cpu) and the number format training computes in."""

from __future__ import annotations

from functools import cache

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


PRECISION_LABELS = {  # TrainConfig.precision's values and their labels
    "auto": "auto (mixed where faster)",
    "mixed": "mixed (bfloat16 on a CPU, float16 on a GPU)",
    "float32": "float32",
}
TRAINING_DTYPES = ("float32", "bfloat16", "float16")  # what a precision resolves to, by name


@cache  # the hardware does not change: the Train form asks on every rerun
def has_matrix_units() -> bool:
    """Whether this CPU has AMX tiles (Intel Sapphire Rapids and later), which oneDNN uses for bfloat16.

    Measured on 2 such cores (README): the best preset trained at about 12 steps/s in bfloat16 against
    about 3 in float32, the fast preset's epoch in 5.0 against 7.1 s. On CPUs without AMX bfloat16 is
    slower than float32.
    """
    init_amx = getattr(torch._C._cpu, "_init_amx", None)  # private: asks Linux for AMX; False where absent
    try:
        return bool(init_amx()) if init_amx is not None else False
    except RuntimeError:
        return False


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """The dtype training's autocast computes in: float32 means no autocast.

    auto: mixed where it is measured faster (CUDA; CPUs with AMX), float32 elsewhere. mixed: float16
    on CUDA, bfloat16 on a CPU. MPS trains in float32 either way (its autocast is not measured here).
    """
    if name not in PRECISION_LABELS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISION_LABELS)}; got {name!r}")
    if name == "float32" or device.type == "mps":
        return torch.float32
    if device.type == "cuda":
        return torch.float16
    if name == "mixed" or has_matrix_units():
        return torch.bfloat16
    return torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """'bfloat16' for torch.bfloat16: one of TRAINING_DTYPES, as runs record it."""
    return str(dtype).removeprefix("torch.")
