"""One loaded model per (files, device, dtype, backend) per process, shared by every caller.

A kernel loads the model once; every later ``%%nl2sql`` cell, widget click or ``Assistant`` reuses it.  A lock
serialises loads, so two threads asking at once load once (and two different models never load side by side,
which would double the memory needed).

Which backend runs the model (:func:`choose_backend`; the ``backend`` setting): ``"ik_llama.cpp"`` and
``"llama.cpp"`` run a GGUF file's own 4-bit weights on the CPU (the ``ik-llama-cpp-python`` wheel, its weights
repacked for its kernels, and the ``xllamacpp`` wheel: both dependencies, no compiler); ``"transformers"`` runs
anything on any device (Hugging Face folders, GPUs, a chosen dtype).  ``"auto"`` (the default) takes, when the
model is a GGUF, the device is the CPU and no dtype was asked for, the first of ik_llama.cpp (measured fastest
here: ``benchmarks/engines/``) and llama.cpp that can run on this machine; otherwise transformers.
"""

from __future__ import annotations

import functools
import gc
import importlib.util
import logging
import os
import threading
import time
from typing import Any

from ..errors import ConfigError, ModelError
from .base import Backend
from .http_backend import is_http_model, redact_http_setting
from .device import choose_device_dtype, normalize_dtype
from .files import first_line, gguf_file_type
from .known import DEFAULT_MODEL
from .resolve import ResolvedModel, join_parts, resolve_model

logger = logging.getLogger("jupyter_nl2sql")

_LOCK = threading.RLock()
_BY_REQUEST: dict[tuple[str, str, str, str], Backend] = {}
_BY_FILES: dict[tuple[str, str, str, str], Backend] = {}
#: Loads started by :func:`preload` whose seconds no caller of :func:`get_backend` has been given yet.
_UNCLAIMED: dict[tuple[str, str, str, str], float] = {}
#: What :func:`preload` is loading now, as :func:`defer_backend` describes it (read without the lock the load holds).
_LOADING: dict[tuple[str, str, str, str], "DeferredBackend"] = {}

BACKENDS = ("auto", "transformers", "llama.cpp", "ik_llama.cpp")
#: The GGUF engines on the CPU, fastest first: what ``auto`` tries.
GGUF_ENGINES = ("ik_llama.cpp", "llama.cpp")
BACKEND_ALIASES = {"": "auto", "auto": "auto", "transformers": "transformers", "hf": "transformers",
                   "torch": "transformers", "llama.cpp": "llama.cpp", "llamacpp": "llama.cpp",
                   "llama_cpp": "llama.cpp", "llama-cpp": "llama.cpp", "gguf": "llama.cpp", "xllamacpp": "llama.cpp",
                   "ik_llama.cpp": "ik_llama.cpp", "ik-llama.cpp": "ik_llama.cpp", "ik_llama_cpp": "ik_llama.cpp",
                   "ik-llama-cpp": "ik_llama.cpp", "ikllama": "ik_llama.cpp", "ik": "ik_llama.cpp"}
LLAMA_INSTALL_HINT = "pip install xllamacpp"
LLAMA_MISSING = "the llama.cpp engine (xllamacpp) is not installed"
IK_INSTALL_HINT = "pip install ik-llama-cpp-python"
IK_MISSING = "the ik_llama.cpp engine (ik-llama-cpp-python) is not installed"
#: What the ik-llama-cpp-python wheel's kernels need (it is built for AVX2).
IK_CPU_FLAGS = ("avx2", "fma", "f16c")


def normalize_backend(backend: Any) -> str:
    """``None``/``"auto"`` → ``"auto"``; ``"llamacpp"``, ``"llama_cpp"`` → ``"llama.cpp"``; ``"hf"`` →
    ``"transformers"``; anything else raises :class:`ConfigError`.

    >>> normalize_backend(None), normalize_backend("LlamaCpp"), normalize_backend("hf")
    ('auto', 'llama.cpp', 'transformers')
    """
    text = str(backend if backend is not None else "auto").strip().lower()
    if text not in BACKEND_ALIASES:
        raise ConfigError(f"unknown backend {backend!r}: use auto, transformers, llama.cpp or ik_llama.cpp")
    return BACKEND_ALIASES[text]


#: llama.cpp's feature names (``llama_print_system_info``) → the Linux ``/proc/cpuinfo`` flag they need.
LLAMA_CPU_FEATURES = {"SSSE3": "ssse3", "AVX": "avx", "AVX2": "avx2", "F16C": "f16c", "FMA": "fma", "BMI2": "bmi2",
                      "AVX_VNNI": "avx_vnni", "AVX512": "avx512f", "AVX512_VBMI": "avx512vbmi",
                      "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16", "AMX_INT8": "amx_int8"}


def missing_cpu_features(system_info: str, cpu_flags: set[str]) -> list[str]:
    """The instruction sets a llama.cpp build uses (``"AVX512 = 1 | ..."``) that this CPU lacks.

    Unknown when ``cpu_flags`` is empty (not Linux x86): nothing is reported missing.

    >>> missing_cpu_features("CPU : AVX = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_BF16 = 0 |", {"avx", "avx2"})
    ['AVX512']
    """
    if not cpu_flags:
        return []
    missing = []
    for part in system_info.replace("CPU :", "|").split("|"):
        name, _, value = part.partition("=")
        name = name.strip()
        if value.strip() == "1" and name in LLAMA_CPU_FEATURES and LLAMA_CPU_FEATURES[name] not in cpu_flags:
            missing.append(name)
    return missing


def _installed(module: str) -> bool:
    """Whether ``module`` can be found (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@functools.lru_cache(maxsize=1)
def llama_cpp_problem() -> str | None:
    """Why the llama.cpp backend cannot run here (not installed, does not load, built for instructions this CPU
    lacks — which would crash the kernel at the first token), or None when it can."""
    if not _installed("xllamacpp"):
        return f"{LLAMA_MISSING}: run {LLAMA_INSTALL_HINT}"
    try:
        from .llamacpp_backend import xllamacpp  # imported there, with its OpenMP settings

        info = str(xllamacpp.get_system_info())
    except Exception as exc:  # a broken shared library, a missing system dependency
        return f"the llama.cpp engine (xllamacpp) does not load ({type(exc).__name__}: {first_line(exc)}): reinstall it"
    from .device import cpu_flags

    missing = missing_cpu_features(info, cpu_flags())
    if missing:
        return (f"this xllamacpp build uses {', '.join(missing)}, which this CPU lacks: build it for this machine "
                f"(pip install --force-reinstall --no-binary xllamacpp xllamacpp)")
    return None


def llama_cpp_available() -> bool:
    """Whether the llama.cpp backend can run here (see :func:`llama_cpp_problem`)."""
    return llama_cpp_problem() is None


@functools.lru_cache(maxsize=1)
def ik_llama_problem() -> str | None:
    """Why the ik_llama.cpp backend cannot run here (not installed, not an x86-64 CPU with AVX2, does not load),
    or None when it can."""
    import platform

    if not _installed("ik_llama_cpp"):
        return f"{IK_MISSING}: run {IK_INSTALL_HINT}"
    from .device import cpu_flags

    flags = cpu_flags()
    if platform.machine().lower() not in ("x86_64", "amd64") or (flags and not set(IK_CPU_FLAGS) <= flags):
        return "the ik_llama.cpp wheel is built for x86-64 CPUs with AVX2, FMA and F16C, which this machine is not"
    try:
        importlib.import_module(".ikllama_backend", __package__)  # loads the engine's library
    except Exception as exc:  # a broken shared library, a missing system dependency
        return (f"the ik_llama.cpp engine does not load ({type(exc).__name__}: {first_line(exc)}): reinstall "
                f"ik-llama-cpp-python")
    return None


def engine_problem(kind: str) -> str | None:
    """Why the GGUF engine ``kind`` (one of :data:`GGUF_ENGINES`) cannot run here, or None."""
    return ik_llama_problem() if kind == "ik_llama.cpp" else llama_cpp_problem()


def choose_backend(backend: Any, resolved: ResolvedModel, device: str, dtype_requested: Any) -> str:
    """``"ik_llama.cpp"``, ``"llama.cpp"`` or ``"transformers"`` for these files on ``device``; see the module
    docstring.

    An explicit ``backend`` that cannot work here raises a one-line :class:`ModelError` / :class:`ConfigError`.
    """
    wanted = normalize_backend(backend)
    if wanted == "transformers":
        return wanted
    if wanted in GGUF_ENGINES:
        if not resolved.is_gguf:
            raise ModelError(f"backend {wanted} needs a .gguf model, but {resolved.model_id} resolved to the "
                             f"Hugging Face folder {resolved.path}: pass a .gguf file, or use backend auto")
        if device != "cpu":
            raise ConfigError(f"backend {wanted} runs on the CPU here, not {device}: use device cpu (or auto "
                              f"on a machine without a GPU), or backend transformers for the GPU")
        problem = engine_problem(wanted)
        if problem is not None:
            raise ModelError(f"backend {wanted} cannot run: {problem}; or use backend transformers")
        return wanted
    if resolved.is_gguf and device == "cpu" and normalize_dtype(dtype_requested) is None:
        for kind in GGUF_ENGINES:
            problem = engine_problem(kind)
            if problem is None:
                return kind
            if not problem.startswith((LLAMA_MISSING, IK_MISSING)):
                logger.warning("not using %s: %s", kind, problem)
    return "transformers"


def _request_key(model: Any, device: Any, dtype: Any, backend: Any) -> tuple[str, str, str, str]:
    """The settings as given, normalised just enough that repeated identical calls hit the cache."""
    name = (os.fspath(model).strip() if model is not None else "") or DEFAULT_MODEL
    return (name, str(device or "auto").strip().lower(), str(dtype or "auto").strip().lower(),
            normalize_backend(backend))


def _resolve(request: tuple[str, str, str, str], model: Any, device: Any, dtype: Any, progress: bool,
             fetch: bool = True) -> tuple[ResolvedModel, str, str, str, tuple[str, str, str, str]]:
    """For a request (:func:`_request_key`): the model's files, the backend that runs them, the device and dtype
    chosen, and the key its loaded backend is kept under in ``_BY_FILES``."""
    chosen_device, chosen_dtype = choose_device_dtype(device, dtype)
    resolved = resolve_model(model, progress=progress, fetch=fetch, join=False)
    kind = choose_backend(request[3], resolved, chosen_device, dtype)
    if not (kind == "ik_llama.cpp" and _loads_repacked_copy(resolved)):
        join_parts(resolved, progress=progress, fetch=fetch)  # the engine reads the GGUF itself
    files = (str(resolved.path), chosen_device, chosen_dtype if kind == "transformers" else "gguf", kind)
    return resolved, kind, chosen_device, chosen_dtype, files


def _loads_repacked_copy(resolved: ResolvedModel) -> bool:
    """Whether the ik_llama.cpp engine loads ``resolved`` from its repacked copy, already made, and so needs no
    joined GGUF (the engine's library is loaded already: :func:`ik_llama_problem` imported it)."""
    from .ikllama_backend import loads_repacked_copy

    return loads_repacked_copy(resolved)


def get_backend(model: Any = None, device: Any = None, dtype: Any = None, progress: bool = True,
                backend: Any = None, *, _claim: bool = True) -> tuple[Backend, float | None]:
    """The backend for ``model`` on ``device`` in ``dtype``, loading it on first use.

    ``model``: None (the default model), a Hub id or known alias, a local folder, a ``.gguf`` file, or a model
    server (``openai+http://127.0.0.1:8000/v1#model-name``: :mod:`~jupyter_nl2sql.models.http_backend`).
    ``device``/``dtype``: None or ``"auto"`` to choose automatically, else e.g. ``"cpu"``, ``"cuda:0"``,
    ``"bfloat16"``.  ``backend``: None/``"auto"``, ``"transformers"``, ``"llama.cpp"`` or ``"ik_llama.cpp"`` (see the module
    docstring); the choice is in ``backend.provenance["backend"]``.  Returns ``(backend, load_seconds)`` where
    ``load_seconds`` is None when the backend was already loaded (a load :func:`preload` made counts as this
    call's own, for its first caller: the seconds it took are reported once).  Raises
    :class:`~jupyter_nl2sql.errors.ModelError` or :class:`~jupyter_nl2sql.errors.ConfigError` with a one-line
    message.
    """
    request = _request_key(model, device, dtype, backend)
    with _LOCK:
        if request in _BY_REQUEST:
            return _BY_REQUEST[request], _UNCLAIMED.pop(request, None)
        t0 = time.perf_counter()
        if is_http_model(request[0]):  # a model server (openai+http://host:port/v1#name): nothing to load here
            if request[3] != "auto":
                raise ConfigError(f"backend {request[3]} runs a model in this process; {redact_http_setting(model)} "
                                  "is served over HTTP: use backend auto")
            from .http_backend import OpenAICompatibleBackend

            remote = OpenAICompatibleBackend.from_setting(request[0], progress=progress)
            _BY_FILES[(remote.model_id, remote.device, remote.dtype, "openai-http")] = remote
            _BY_REQUEST[request] = remote
            return remote, time.perf_counter() - t0
        resolved, kind, chosen_device, chosen_dtype, files = _resolve(request, model, device, dtype, progress)
        loaded = _BY_FILES.get(files)
        load_seconds = None
        if loaded is None:
            if kind == "ik_llama.cpp":
                from .ikllama_backend import IkLlamaBackend

                loaded = IkLlamaBackend.load(resolved, progress=progress)
            elif kind == "llama.cpp":
                from .llamacpp_backend import LlamaCppBackend

                loaded = LlamaCppBackend.load(resolved, progress=progress)
            else:
                from .transformers_backend import TransformersBackend

                loaded = TransformersBackend.load(resolved, chosen_device, chosen_dtype, progress=progress)
            _BY_FILES[files] = loaded
            load_seconds = time.perf_counter() - t0
        _BY_REQUEST[request] = loaded
        if not _claim and load_seconds is not None:
            _UNCLAIMED[request] = load_seconds
        return loaded, load_seconds


class Preload(threading.Thread):
    """The daemon thread :func:`preload` starts: it loads a GGUF model whose files are in place, and leaves joining
    its parts, downloading it or repacking its weights (first use) to the caller's own :func:`get_backend`, with
    its progress.  So it writes nothing, and a process may end while it runs."""

    def __init__(self, model: Any, device: Any, dtype: Any, progress: bool, backend: Any) -> None:
        super().__init__(name="nl2sql-preload", daemon=True)
        self._settings = (model, device, dtype, backend)
        self._progress = progress

    def run(self) -> None:
        model, device, dtype, backend = self._settings
        request = _request_key(model, device, dtype, backend)
        try:
            deferred = defer_backend(model, device=device, dtype=dtype, progress=self._progress, backend=backend,
                                     fetch=False)
            if deferred is None or deferred.provenance["backend"] not in GGUF_ENGINES:
                # loaded already, a model server, or transformers (whose loading is Python, not C: it would only
                # take turns with the caller's imports)
                return
            if deferred.provenance["backend"] == "ik_llama.cpp" and deferred.resolved is not None:
                from .ikllama_backend import writes_on_load

                if writes_on_load(deferred.resolved):  # its weights are repacked into the cache first
                    return
            _LOADING[request] = deferred
            get_backend(model, device=device, dtype=dtype, progress=self._progress, backend=backend, _claim=False)
        except Exception as exc:  # raised again, where it can be shown, by the caller's own get_backend
            logger.debug("preloading the model failed: %s", first_line(exc))
        finally:
            _LOADING.pop(request, None)


def preload(model: Any = None, device: Any = None, dtype: Any = None, progress: bool = True,
            backend: Any = None) -> Preload:
    """Start :func:`get_backend` for these settings in a daemon thread (:class:`Preload`) and return it, so the
    model loads while the caller does other work (the command line imports the pipeline and reads the schema
    meanwhile: the engine loads in C, without the interpreter lock).  The next :func:`get_backend` for the same
    settings waits for it and is given the load's seconds; :func:`defer_backend` does not wait (a reply found in a
    cache is answered while the load goes on).  A load that fails is not reported here: that next call tries again
    and raises the error to its own caller."""
    thread = Preload(model, device, dtype, progress, backend)
    thread.start()
    return thread


class DeferredBackend:
    """A model not loaded yet, known by what keys its replies in a cache: ``provenance`` (the files' sha256 or
    revision, the backend that would run them, dtype and device), ``model_id``, ``device`` and ``dtype``, all found
    from its files without starting an engine (:func:`defer_backend`).  :meth:`load` loads it; it has nothing
    else of a :class:`~jupyter_nl2sql.models.Backend`."""

    deferred = True

    def __init__(self, request: tuple[str, str, str, str], provenance: dict[str, Any],
                 resolved: ResolvedModel | None = None) -> None:
        self._request = request
        self.provenance = provenance
        self.resolved = resolved
        """The model's files, as found."""
        self.model_id: str = provenance["model_id"]
        self.device: str = provenance["device"]
        self.dtype: str = provenance["dtype"]

    def __repr__(self) -> str:
        return f"<DeferredBackend {self.model_id} ({self.provenance['backend']}, {self.dtype}, not loaded)>"

    def load(self, progress: bool = True) -> tuple[Backend, float | None]:
        """:func:`get_backend` for the same settings: the loaded backend and the seconds its load took."""
        model, device, dtype, backend = self._request
        return get_backend(model, device=device, dtype=dtype, backend=backend, progress=progress)


def defer_backend(model: Any = None, device: Any = None, dtype: Any = None, progress: bool = True,
                  backend: Any = None, *, fetch: bool = True) -> DeferredBackend | None:
    """What :func:`get_backend` would load for these settings, as a :class:`DeferredBackend`, without loading it —
    so a reply already in a cache is answered without starting the engine; None when that backend is loaded
    already (:func:`get_backend` returns it at once) or is a model server.  Finds the files as a load would
    (joining the model's parts on first use; with ``fetch=False`` a model whose files are not in place raises
    :class:`~jupyter_nl2sql.errors.ModelError` instead) and raises as it would."""
    request = _request_key(model, device, dtype, backend)
    loading = _LOADING.get(request)
    if loading is not None:
        return loading
    with _LOCK:
        if request in _BY_REQUEST or is_http_model(request[0]):
            return None
        resolved, kind, chosen_device, chosen_dtype, files = _resolve(request, model, device, dtype, progress,
                                                                      fetch)
        if files in _BY_FILES:
            return None
    # the device and dtype each backend reports (LlamaCppBackend, TransformersBackend)
    where = ({"dtype": gguf_file_type(resolved.path.name), "device": "cpu"} if kind in GGUF_ENGINES
             else {"dtype": chosen_dtype, "device": chosen_device})
    return DeferredBackend(request, {**resolved.provenance(), **where, "backend": kind}, resolved)


def loaded_backends() -> list[Backend]:
    """The backends loaded in this process, oldest first."""
    with _LOCK:
        return list(_BY_FILES.values())


def clear_backends() -> None:
    """Forget every loaded backend (tests; freeing memory).  Callers holding one keep it alive."""
    with _LOCK:
        had_any = bool(_BY_FILES)
        _BY_REQUEST.clear()
        _BY_FILES.clear()
        _UNCLAIMED.clear()
    if had_any:
        gc.collect()
