"""Device and dtype: chosen automatically, overridable, validated.

:func:`choose_device_dtype` is a pure function of the user's settings and a :class:`Hardware` description, so
every branch (CUDA included) is testable on any machine; :func:`detect_hardware` fills that description from
torch.  Automatic choice: CUDA (bfloat16 where the GPU supports it, else float16) → Apple MPS (float16) → CPU
(bfloat16 where the CPU has native bf16 instructions, else float32).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

DTYPE_ALIASES: dict[str, str] = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


@dataclass(frozen=True)
class Hardware:
    """What the machine offers, as far as device and dtype choice is concerned."""

    cuda_devices: int = 0
    cuda_bf16: bool = False
    mps: bool = False
    cpu_bf16: bool = False


def normalize_dtype(dtype: Any) -> str | None:
    """``"bf16"`` → ``"bfloat16"``, ``torch.float16`` → ``"float16"``, ``None``/``"auto"`` → None.

    >>> normalize_dtype("BF16"), normalize_dtype(None)
    ('bfloat16', None)
    """
    if dtype is None:
        return None
    text = str(dtype).strip().lower().removeprefix("torch.")
    if text in ("", "auto"):
        return None
    if text not in DTYPE_ALIASES:
        raise ConfigError(f"unknown dtype {dtype!r}: use auto, bfloat16, float16 or float32")
    return DTYPE_ALIASES[text]


def normalize_device(device: Any, hw: Hardware) -> str | None:
    """``"cuda"`` → ``"cuda:0"``, ``"gpu"`` → ``"cuda:0"``, ``None``/``"auto"`` → None; checks availability.

    >>> normalize_device("cuda", Hardware(cuda_devices=1))
    'cuda:0'
    """
    if device is None:
        return None
    text = str(device).strip().lower()
    if text in ("", "auto"):
        return None
    if text == "cpu":
        return "cpu"
    if text == "mps":
        if not hw.mps:
            raise ConfigError("device 'mps' requested but Apple MPS is not available here: use auto or cpu")
        return "mps"
    if text in ("cuda", "gpu") or text.startswith("cuda:"):
        return _cuda_device(text, hw)
    raise ConfigError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps")


def _cuda_device(text: str, hw: Hardware) -> str:
    """Validate a CUDA device name against the visible GPUs."""
    index_text = text.partition(":")[2] or "0"
    if not index_text.isdigit():
        raise ConfigError(f"bad device {text!r}: use cuda or cuda:N with N a GPU number")
    if hw.cuda_devices == 0:
        raise ConfigError(f"device {text!r} requested but CUDA is not available (no GPU visible, or a CPU-only "
                          f"torch build): use auto or cpu")
    index = int(index_text)
    if index >= hw.cuda_devices:
        raise ConfigError(f"device {text!r} requested but only {hw.cuda_devices} GPU(s) are visible "
                          f"(cuda:0..cuda:{hw.cuda_devices - 1})")
    return f"cuda:{index}"


def auto_dtype(device: str, hw: Hardware) -> str:
    """The fastest dtype that keeps quality for ``device``."""
    if device.startswith("cuda"):
        return "bfloat16" if hw.cuda_bf16 else "float16"
    if device == "mps":
        return "float16"
    return "bfloat16" if hw.cpu_bf16 else "float32"


def choose_device_dtype(device: Any = None, dtype: Any = None, hw: Hardware | None = None) -> tuple[str, str]:
    """The ``(device, dtype)`` to load with: the user's choice where given (validated), else automatic.

    >>> choose_device_dtype(None, None, Hardware(cuda_devices=2, cuda_bf16=True))
    ('cuda:0', 'bfloat16')
    >>> choose_device_dtype("cpu", "auto", Hardware(cpu_bf16=False))
    ('cpu', 'float32')
    """
    hw = hw if hw is not None else detect_hardware()
    want_dtype = normalize_dtype(dtype)
    want_device = normalize_device(device, hw)
    if want_device is None:
        want_device = "cuda:0" if hw.cuda_devices else "mps" if hw.mps else "cpu"
    if want_dtype == "bfloat16" and want_device.startswith("cuda") and not hw.cuda_bf16:
        raise ConfigError("dtype bfloat16 is not supported by this GPU: use float16 (or auto)")
    return want_device, want_dtype or auto_dtype(want_device, hw)


# -- probing the machine (imports torch) ---------------------------------------------------------------------------
def cpu_flags() -> set[str]:
    """The CPU feature flags from ``/proc/cpuinfo`` (Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def cpu_supports_bf16() -> bool:
    """Whether the CPU has native bfloat16 arithmetic (AVX512-BF16, AMX or Arm BF16)."""
    return bool(cpu_flags() & CPU_BF16_FLAGS)


#: libgomp's spin count while loading an OpenMP runtime (torch's, llama.cpp's); see :func:`brief_openmp_spin`.
GOMP_SPINCOUNT = "1000"


@contextmanager
def brief_openmp_spin() -> Iterator[None]:
    """Import torch or llama.cpp inside this block so that their OpenMP threads spin only briefly before sleeping.

    Both synchronise their threads with OpenMP barriers hundreds of times per token, and libgomp spins up to
    300,000 times at each by default.  With one thread per core that is fine on an idle machine, but as soon as
    anything else runs (another kernel, a build, a browser) a spinning thread burns the time slice its partner
    needs.  Measured on 2 busy cores (load 4-6): llama.cpp decoding 0.4-0.8 → 9-12 tokens/s, prompt 10-25 → 40-53
    tokens/s; transformers 12 tokens 86 → 28 s, prompt 10 → 19 tokens/s.  libgomp reads the setting once, when
    the library is loaded, so it is set only around the import and removed after.  A user's own
    ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is left alone; a library already loaded keeps its setting.
    """
    if any(k in os.environ for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")):
        yield
        return
    os.environ["GOMP_SPINCOUNT"] = GOMP_SPINCOUNT
    try:
        yield
    finally:
        os.environ.pop("GOMP_SPINCOUNT", None)


GPU_DEVICE_NODES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg", "/proc/driver/nvidia")


def gpu_possible() -> bool:
    """Whether a GPU could be visible to torch: a macOS machine (MPS), a torch already imported, or a GPU driver's
    device node (NVIDIA, AMD ROCm, WSL).  False means CPU for sure, without paying for ``import torch``."""
    if platform.system() == "Darwin" or "torch" in sys.modules:
        return True
    return any(os.path.exists(node) for node in GPU_DEVICE_NODES)


def detect_hardware() -> Hardware:
    """Describe this machine (imports torch, unless no GPU driver is present at all)."""
    if not gpu_possible():
        return Hardware(cpu_bf16=cpu_supports_bf16())
    with brief_openmp_spin():
        import torch

    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps_backend = getattr(torch.backends, "mps", None)
    return Hardware(
        cuda_devices=cuda,
        cuda_bf16=bool(cuda) and torch.cuda.is_bf16_supported(),
        mps=bool(mps_backend is not None and mps_backend.is_available() and platform.system() == "Darwin"),
        cpu_bf16=cpu_supports_bf16(),
    )
