"""Per-stage timing and memory for one answer.

:class:`Stats` records, for every pipeline stage, its wall time and the change in process RSS, plus the call's
totals: tokens in/out and tokens/s of generation, the model load time when this call loaded the model, process
RSS at the end and its peak during the call, and the CUDA peak where a GPU was used.  It renders as one footer
line in text (``_repr_pretty_``) and HTML (``_repr_html_``), and as a dict (``to_dict``) for benchmarks.

The peak RSS of a call is read from Linux's ``VmHWM`` after resetting it through ``/proc/self/clear_refs`` at
the start of the call; elsewhere it falls back to the process-lifetime peak (``ru_maxrss``).
"""

from __future__ import annotations

import html
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import psutil

_PROCESS = psutil.Process()


def rss_bytes() -> int:
    """Current resident set size of this process in bytes."""
    return _PROCESS.memory_info().rss


def _read_status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark for this process (Linux); return whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak RSS since the last :func:`reset_peak_rss` (Linux) or since the process started."""
    hwm = _read_status_kb("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _cuda_in_use() -> Any | None:
    """torch, if it is already imported and CUDA is initialised; never imports torch itself."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    except Exception:  # pragma: no cover - broken CUDA setups
        return None


def format_bytes(n: float | None) -> str:
    """Human-readable size: ``1.5 GB``, ``312 MB``, ``-4.0 MB``."""
    if n is None:
        return "n/a"
    sign = "-" if n < 0 else ""
    n = abs(float(n))
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{sign}{n:.0f} {unit}" if unit in ("B", "KB", "MB") else f"{sign}{n:.1f} {unit}"
        n /= 1024
    return f"{sign}{n:.1f} TB"  # pragma: no cover


def format_seconds(s: float | None) -> str:
    """``812 ms`` below a second, ``3.42 s`` above."""
    if s is None:
        return "n/a"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


@dataclass
class StageStat:
    """Wall time and RSS change of one pipeline stage (a stage run twice, e.g. on repair, accumulates)."""

    name: str
    seconds: float = 0.0
    rss_delta: int = 0
    calls: int = 0


@dataclass
class Stats:
    """Where the time and memory of one call went."""

    stages: dict[str, StageStat] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    generation_seconds: float = 0.0
    model_load_seconds: float | None = None
    cache_hit: bool = False
    result_cache_hit: bool | None = None
    """True/False when the opt-in result cache was asked (``Assistant(result_cache=...)``), None when it is off."""
    rss_start: int = 0
    rss_end: int = 0
    rss_peak: int = 0
    gpu_peak: int | None = None
    total_seconds: float = 0.0
    device: str | None = None
    tokens_reused: int = 0
    """Prompt tokens the model did not evaluate again (kept in its cache or restored from a prefix state)."""
    prefill_seconds: float | None = None
    """Time evaluating the prompt tokens that were not reused (None when the backend cannot tell)."""
    decode_seconds: float | None = None
    """Time generating the reply's tokens (None when the backend cannot tell)."""
    tokens_guessed: int = 0
    """Generated tokens that came out of lookup decoding's guesses (see :mod:`jupyter_nl2sql.models.drafts`)."""
    prefix: str | None = None
    """How the prompt's schema part got into the model's cache: resident, restored, computed (None: not kept)."""
    prefix_seconds: float = 0.0
    """Time restoring (or evaluating and saving) that schema part."""
    _t0: float = field(default=0.0, repr=False)

    # -- recording -------------------------------------------------------------------------------------------
    def start(self) -> "Stats":
        """Mark the start of a call: reset the peak-RSS mark (and the CUDA peak when CUDA is in use)."""
        reset_peak_rss()
        torch = _cuda_in_use()
        if torch is not None:
            torch.cuda.reset_peak_memory_stats()
        self.rss_start = rss_bytes()
        self._t0 = time.perf_counter()
        return self

    def finish(self) -> "Stats":
        """Mark the end of a call: totals, RSS now and its peak, CUDA peak."""
        self.total_seconds = time.perf_counter() - self._t0
        self.rss_end = rss_bytes()
        self.rss_peak = max(peak_rss_bytes(), self.rss_end)
        torch = _cuda_in_use()
        if torch is not None:
            self.gpu_peak = int(torch.cuda.max_memory_allocated())
        return self

    @contextmanager
    def stage(self, name: str) -> Iterator[StageStat]:
        """Time a stage: ``with stats.stage("execute"): ...``."""
        st = self.stages.setdefault(name, StageStat(name))
        rss0 = rss_bytes()
        t0 = time.perf_counter()
        try:
            yield st
        finally:
            st.seconds += time.perf_counter() - t0
            st.rss_delta += rss_bytes() - rss0
            st.calls += 1

    def record(self, name: str, seconds: float) -> None:
        """Add ``seconds`` measured elsewhere to stage ``name``."""
        st = self.stages.setdefault(name, StageStat(name))
        st.seconds += seconds
        st.calls += 1

    def add_generation(self, gen: Any) -> None:
        """Count one model call (a :class:`~jupyter_nl2sql.models.base.Generation`): tokens, prefill and decode."""
        self.tokens_in += gen.tokens_in
        self.tokens_out += gen.tokens_out
        self.tokens_reused += getattr(gen, "tokens_reused", 0)
        self.tokens_guessed += getattr(gen, "tokens_guessed", 0)
        self.generation_seconds += gen.seconds
        for name in ("prefill_seconds", "decode_seconds"):
            value = getattr(gen, name, None)
            if value is not None:
                setattr(self, name, (getattr(self, name) or 0.0) + value)
        if getattr(gen, "prefix_source", None) is not None:
            self.prefix = self.prefix or gen.prefix_source  # the first call's: later rounds find it resident
            self.prefix_seconds += gen.prefix_seconds

    # -- reading ---------------------------------------------------------------------------------------------
    @property
    def tokens_per_second(self) -> float | None:
        """Generated tokens per second of decode time (of the whole generation when the backend does not split
        prefill from decode); None when nothing was generated."""
        seconds = self.decode_seconds if self.decode_seconds else self.generation_seconds
        if self.tokens_out and seconds > 0:
            return self.tokens_out / seconds
        return None

    @property
    def tokens_computed(self) -> int:
        """Prompt tokens the model evaluated (not reused)."""
        return self.tokens_in - self.tokens_reused

    @property
    def rss_delta(self) -> int:
        """RSS at the end of the call minus RSS at its start."""
        return self.rss_end - self.rss_start

    def seconds(self, stage: str) -> float:
        """Seconds spent in ``stage`` (0 when it did not run)."""
        st = self.stages.get(stage)
        return st.seconds if st else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view, used by the benchmarks and the metrics."""
        return {
            "stages": {k: {"seconds": v.seconds, "rss_delta": v.rss_delta, "calls": v.calls}
                       for k, v in self.stages.items()},
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "generation_seconds": self.generation_seconds,
            "tokens_per_second": self.tokens_per_second,
            "model_load_seconds": self.model_load_seconds,
            "cache_hit": self.cache_hit,
            "result_cache_hit": self.result_cache_hit,
            "rss_start": self.rss_start,
            "rss_end": self.rss_end,
            "rss_peak": self.rss_peak,
            "rss_delta": self.rss_delta,
            "gpu_peak": self.gpu_peak,
            "total_seconds": self.total_seconds,
            "device": self.device,
            "tokens_reused": self.tokens_reused,
            "tokens_guessed": self.tokens_guessed,
            "prefill_seconds": self.prefill_seconds,
            "decode_seconds": self.decode_seconds,
            "prefix": self.prefix,
            "prefix_seconds": self.prefix_seconds,
        }

    def _parts(self) -> list[str]:
        parts = [f"total {format_seconds(self.total_seconds)}"]
        for st in self.stages.values():
            text = f"{'model load' if st.name == 'load' else st.name} {format_seconds(st.seconds)}"
            if st.name == "generate":
                if self.cache_hit:
                    text += " (cached)"
                elif self.tokens_out:
                    text += f" ({self._generation_detail()})"
            elif st.name == "execute" and self.result_cache_hit:
                text += " (cached result)"
            parts.append(text)
        parts.append(f"RSS {format_bytes(self.rss_end)} (peak {format_bytes(self.rss_peak)}, "
                     f"Δ {format_bytes(self.rss_delta)})")
        if self.gpu_peak is not None:
            parts.append(f"GPU peak {format_bytes(self.gpu_peak)}")
        if self.device:
            parts.append(self.device)
        return parts

    def _generation_detail(self) -> str:
        """``prefill 43 tok 0.6 s, 807 reused (schema restored 12 ms) · decode 14 tok, 21.2 tok/s (6 guessed)``, or
        the plain ``850→14 tok, 9.1 tok/s`` when the backend does not split the two."""
        tps = self.tokens_per_second
        rate = f", {tps:.1f} tok/s" if tps else ""
        if self.prefill_seconds is None:
            return f"{self.tokens_in}→{self.tokens_out} tok{rate}"
        text = f"prefill {self.tokens_computed} tok {format_seconds(self.prefill_seconds)}"
        if self.tokens_reused:
            text += f", {self.tokens_reused} reused"
        if self.prefix in ("restored", "computed"):
            text += f" (schema {self.prefix} {format_seconds(self.prefix_seconds)})"
        guessed = f" ({self.tokens_guessed} guessed)" if self.tokens_guessed else ""
        return f"{text} · decode {self.tokens_out} tok{rate}{guessed}"

    def __str__(self) -> str:
        return " · ".join(self._parts())

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        return ('<div class="nl2sql-stats" style="font-size:85%;color:#666;font-family:monospace">'
                + html.escape(str(self)) + "</div>")


def env_flag(name: str) -> bool:
    """True when the environment variable is set to a truthy value (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
