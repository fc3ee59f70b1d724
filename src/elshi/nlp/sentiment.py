"""Offline sentiment for Kazakh, Russian, English and Arabic; Chinese when an operator trains it.

Every language uses a linear model (logistic regression over TF-IDF word and character
n-grams) trained by scripts/train_sentiment.py and shipped as plain arrays in
``elshi/nlp/models/sentiment-*.npz``; inference is numpy only. An operator may train a
model of their own (``elshi train sentiment``) into the models folder of the data home;
such a model is used in place of the shipped one. Chinese has no shipped model (its only
labelled data forbids commercial use): without an operator-trained model, Chinese and any
other language without a model get label "neutral", score 0 and no evidence.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np

LABELS: Final = ("negative", "neutral", "positive")
#: Longer texts are cut to this many characters before analysis (a post, not a book).
MAX_CHARS: Final = 20_000
#: Languages with a shipped model.
LANGUAGES: Final = ("kk", "ru", "en", "ar")
#: Languages an operator can train a model for from their own labelled file.
TRAINABLE: Final = ("kk", "ru", "en", "ar", "zh")
VADER_THRESHOLD: Final = 0.05
EVIDENCE_SIZE: Final = 8
MODEL_FORMAT: Final = 1


@dataclass(frozen=True, slots=True)
class SentimentResult:
    """Sentiment of one text: label, score in [-1, 1], class probabilities and evidence."""

    label: str
    score: float
    probs: dict[str, float]
    #: Words (or word pairs) with their push towards positive (> 0) or negative (< 0).
    evidence: list[tuple[str, float]] = field(default_factory=list)


def neutral_result() -> SentimentResult:
    """Return the answer for text that cannot be analysed: neutral, score 0, no evidence."""
    return SentimentResult("neutral", 0.0, {"negative": 0.0, "neutral": 1.0, "positive": 0.0})


# ---------------------------------------------------------------------------------------------
# Tokens

WORD, NUM, MARK, PUNCT, BREAK = 0, 1, 2, 3, 4

# Combining marks (Latin accents typed apart, Arabic short vowels) stay inside their word.
_ARABIC_MARK_RANGES = "\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed"
_MARKS = "\u0300-\u036f" + _ARABIC_MARK_RANGES
_TOKEN = re.compile(
    rf"(?P<w>[^\W\d_](?:[^\W\d_]|[{_MARKS}])*(?:['’\-][^\W\d_](?:[^\W\d_]|[{_MARKS}])*)*)"
    r"|(?P<n>\d+)"
    r"|(?P<m>[!?]+|\){2,}|\({2,}|[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF])"
    r"|(?P<b>[.;…]+)"
    r"|(?P<p>[,:()«»\"“”„—–\-/\[\]])"
)
_REPEAT = re.compile(r"(.)\1{2,}")
_KK_FOLD = str.maketrans(
    {"ә": "а", "ғ": "г", "қ": "к", "ң": "н", "ө": "о", "ұ": "у", "ү": "у", "һ": "х", "і": "и"}
)
_LATIN_DIACRITICS = str.maketrans(
    {"ä": "a", "ğ": "g", "ǵ": "g", "ı": "y", "ñ": "n", "ń": "n", "ö": "o", "ó": "o", "ū": "u",
     "ü": "u", "ú": "u", "ş": "sh", "ç": "ch", "é": "e", "á": "a", "í": "i"}
)  # fmt: skip
# Kazakh typed in Latin letters (official and informal spellings) mapped onto folded Cyrillic.
_LATIN_TO_CYRILLIC: Final = (
    ("sh", "ш"), ("ch", "ч"), ("zh", "ж"), ("kh", "х"), ("ya", "я"), ("yu", "ю"), ("ts", "ц"),
    ("w", "ш"), ("j", "ж"), ("q", "к"), ("y", "ы"), ("a", "а"), ("b", "б"), ("c", "с"),
    ("d", "д"), ("e", "е"), ("f", "ф"), ("g", "г"), ("h", "х"), ("i", "и"), ("k", "к"),
    ("l", "л"), ("m", "м"), ("n", "н"), ("o", "о"), ("p", "п"), ("r", "р"), ("s", "с"),
    ("t", "т"), ("u", "у"), ("v", "в"), ("x", "х"), ("z", "з"),
)  # fmt: skip
_CONTRAST: Final = frozenset(
    {"но", "однако", "а", "хотя", "зато", "but", "however", "although", "though", "yet",
     "whereas", "while", "бірақ", "алайда", "ал", "дегенмен", "әйтсе"}
)  # fmt: skip


# Arabic: short vowels and the stretching tatweel dropped, letter variants that writers
# interchange folded (alef forms, alef maqsura / ya, ta marbuta / ha).
_ARABIC_MARKS = re.compile(f"[{_ARABIC_MARK_RANGES}\u0640]")
_ARABIC_FOLD = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه"})
_SOCIAL = re.compile(r"(?:https?://|www\.)\S+|(?<![\w@])@\w+", re.IGNORECASE)


def strip_social(text: str) -> str:
    """Remove links and @handles (they name, they do not judge); hashtag words stay."""
    return _SOCIAL.sub(" ", text)


class Token(NamedTuple):
    """A token: normalised text, kind and character span in the original text."""

    text: str
    kind: int
    start: int
    end: int


def clean_text(text: object) -> str:
    """Return analysable text from anything: bytes are decoded leniently, long text is cut."""
    if text is None:
        return ""
    if isinstance(text, bytes | bytearray):
        text = bytes(text[: MAX_CHARS * 4]).decode("utf-8", errors="replace")
    elif not isinstance(text, str):
        text = str(text)
    text = text[:MAX_CHARS]
    # Lone surrogates (from undecodable bytes) break encoders further down the line.
    return text.encode("utf-8", errors="replace").decode("utf-8")


@lru_cache(maxsize=1 << 16)
def normalise_word(word: str) -> str:
    """Return the comparable form of a word: NFKC, case-folded, ё as е, long repeats cut."""
    if not word.isascii() and not unicodedata.is_normalized("NFKC", word):
        word = unicodedata.normalize("NFKC", word)
    word = word.casefold().replace("ё", "е")
    if "\u0600" <= max(word) <= "\u06ff":
        word = _ARABIC_MARKS.sub("", word).translate(_ARABIC_FOLD) or word
    if len(word) > 2:
        word = _REPEAT.sub(r"\1\1", word)
    return word


def tokenize(text: str) -> list[Token]:
    """Split text into normalised tokens, keeping punctuation that bounds clauses."""
    out: list[Token] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        raw = m.group()
        if kind == "w":
            out.append(Token(normalise_word(raw), WORD, m.start(), m.end()))
        elif kind == "n":
            out.append(Token("0", NUM, m.start(), m.end()))
        elif kind == "m":
            out.append(Token(raw[0], MARK, m.start(), m.end()))
        elif kind == "b":
            out.append(Token(".", BREAK, m.start(), m.end()))
        else:
            out.append(Token(raw, PUNCT, m.start(), m.end()))
    return out


def fold(word: str, latin: bool) -> str:
    """Fold Kazakh letters onto their Russian look-alikes, optionally Latin spelling too."""
    word = word.translate(_KK_FOLD)
    if not latin:
        return word
    if not word.isascii():
        plain = word.translate(_LATIN_DIACRITICS)
        if plain.isascii() and plain.isalpha():
            word = plain
    if word.isascii() and word.isalpha():
        for a, b in _LATIN_TO_CYRILLIC:
            word = word.replace(a, b)
    return word


# ---------------------------------------------------------------------------------------------
# Lexicon

# Word beginnings (Kazakh letters folded, ё as е) of evaluative words of the news and diplomatic
# register that review and news training data rarely hold. They are not scored by hand: a model
# sees only "a positive / negative lexicon word is here" and learns how much that is worth.
_LEXICON_SOURCE: Final = {
    "ru": {
        "+": "похвал хвал приветств поддерж поблагодар благодар поздрав одобр восхищ успех успешн "
        "достижен сотруднич дружб дружеск партнерств мирн стабильн процвета уважен довери "
        "прекрасн отличн хорош замечательн побед радост помощ помог развит укрепл улучш "
        "награ лучш выдающ надежн эффективн солидарн гордост поддержк",
        "-": "критик раскритик осуд осужд обвин угрож угроз санкц протест войн напад атак агресс "
        "террор теракт убий убит погиб жертв взрыв кризис конфликт скандал наруш провал провокац "
        "враждеб арест коррупц мошен ущерб катастроф плох ужасн недовол возмущ ненавист преступ "
        "насил опасн беспоряд пострада ранен разруш незаконн фальсиф обман пропаганд экстремист "
        "оккупац вторжен",
    },
    "kk": {
        "+": "мактад мактау мактап мактай алгыс рахмет ракмет куттыкта колдау колдад колдай "
        "жаксы керемет тамаша уздик жетистик ынтымактас достык сериктес келисим бейбит "
        "туракты курмет сеним куан комек дамыт ныгай ризашылык лайык купта табысты",
        "-": "сынад сынау сынга сынай айыпта айып катер кауип санкция наразы согыс шабуыл ланкес "
        "террор олтир жарылыс дагдарыс кактыгыс жанжал бузу бузд сатсиз арандат тыйым "
        "жемкор алаяк зиян апат жаман нашар коркынышты зорлык кылмыс баскыншы агрессия",
    },
}
LEXICON: Final = {
    lang: {stem: sign for sign, words in parts.items() for stem in words.split()}
    for lang, parts in _LEXICON_SOURCE.items()
}
_NEGATE_BEFORE: Final = frozenset({"не", "нет", "ни", "not", "no"})
_NEGATE_AFTER: Final = frozenset({"емес", "жоқ", "жок"})
_KK_VERB_NEGATION: Final = ("ма", "ме", "ба", "бе", "па", "пе")


def lexicon_sign(word: str, lang: str) -> str | None:
    """Return "+" or "-" for a lexicon word (matched by its folded beginning), else None."""
    lexicon = LEXICON.get(lang)
    if not lexicon:
        return None
    folded = word.translate(_KK_FOLD)
    # A stem may take endings, but not a whole other word ("Казакстан" is not "каза...").
    for k in range(min(len(folded), 14), max(2, len(folded) - 9), -1):
        sign = lexicon.get(folded[:k])
        if sign is not None:
            if lang == "kk" and folded[k : k + 2] in _KK_VERB_NEGATION:
                return "-" if sign == "+" else "+"
            return sign
    return None


# ---------------------------------------------------------------------------------------------
# Features

#: One feature occurrence: block name, key, unit (index into the document's units), weight.
Occurrence = tuple[str, str, int, float]


@dataclass(slots=True)
class Doc:
    """A document as the models see it: tokens, per-token weights and an optional target."""

    tokens: list[Token]
    weights: list[float] | None = None
    #: Token indices of the target mention (stance models only).
    target: tuple[int, int] | None = None

    def unit(self, u: int) -> str:
        """Return the display string of a unit: a word, or a word pair past the last token."""
        n = len(self.tokens)
        if u < n:
            return self.tokens[u].text
        return f"{self.tokens[u - n].text} {self.tokens[u - n + 1].text}"


def features(doc: Doc, cfg: dict[str, Any]) -> Iterator[Occurrence]:
    """Yield the feature occurrences of a document for a model configuration."""
    toks = doc.tokens
    n = len(toks)
    weights = doc.weights or [1.0] * n
    lo_t, hi_t = doc.target if doc.target else (-1, -2)
    blocks = cfg["blocks"]
    latin = bool(cfg.get("fold_latin", False))
    lexicon = cfg.get("lexicon", "")
    masks = bool(cfg.get("lexicon_masks", False))
    prev = -1
    for i, tok in enumerate(toks):
        if lo_t <= i <= hi_t:
            # The target mention becomes one placeholder token: only its pairs are features.
            if i == lo_t and "w" in blocks and cfg.get("bigrams", True):
                if prev >= 0 and weights[prev] > 0:
                    yield "w", f"{toks[prev].text} <e>", n + prev, weights[prev]
                prev = -2
            continue
        if tok.kind >= PUNCT:
            prev = -1
            continue
        w = weights[i]
        if doc.target and tok.text in _CONTRAST:
            # A contrastive conjunction bounds the window; it says nothing about the target.
            w = 0.0
        if "s" in blocks:
            yield "s", tok.text, i, 1.0
        if w <= 0.0:
            prev = -1
            continue
        sign = lexicon_sign(tok.text, lexicon) if lexicon and tok.kind == WORD else None
        if sign is not None:
            negated = (i > 0 and toks[i - 1].text in _NEGATE_BEFORE) or (
                i + 1 < n and toks[i + 1].text in _NEGATE_AFTER
            )
            if negated:
                sign = "-" if sign == "+" else "+"
            yield "l", sign, i, w
        # With "lexicon_masks" a lexicon word is seen only as "a positive/negative word": the
        # model must then learn what such a word is worth, which carries over to lexicon
        # words that its training data never had.
        own = sign is None or not masks
        if "w" in blocks:
            if own:
                yield "w", tok.text, i, w
            if cfg.get("bigrams", True):
                if prev >= 0:
                    yield "w", f"{toks[prev].text} {tok.text}", n + prev, min(w, weights[prev])
                elif prev == -2:
                    yield "w", f"<e> {tok.text}", i, w
        if own and "c" in blocks and tok.kind == WORD:
            # One occurrence per word; `expand` turns it into the word's character n-grams.
            yield "c", fold(tok.text, latin), i, w
        prev = i
    if "e" in blocks and doc.target:
        for i in range(lo_t, hi_t + 1):
            tok = toks[i]
            if tok.kind != WORD:
                continue
            yield "e", tok.text, i, 1.0
            yield "e", "#" + tok.text, i, 1.0


@lru_cache(maxsize=1 << 16)
def char_ngrams(word: str, lo: int, hi: int) -> tuple[str, ...]:
    """Return the character n-grams (lo..hi) of a word padded with one space each side."""
    padded = f" {word} "
    size = len(padded)
    return tuple(padded[j : j + k] for k in range(lo, hi + 1) for j in range(size - k + 1))


def expand(block: str, key: str, cfg: dict[str, Any]) -> tuple[str, ...]:
    """Return the feature keys an occurrence stands for (n-grams for character blocks)."""
    if block == "c":
        lo, hi = cfg.get("char_range", (2, 5))
        return char_ngrams(key, lo, hi)
    if block == "e" and key.startswith("#"):
        return tuple("#" + g for g in char_ngrams(key[1:], 3, 5))
    return (key,)


def feature_keys(doc: Doc, cfg: dict[str, Any]) -> set[tuple[str, str]]:
    """Return the distinct (block, feature) pairs of a document."""
    return {(b, k) for b, key, _, _ in features(doc, cfg) for k in expand(b, key, cfg)}


# ---------------------------------------------------------------------------------------------
# Linear model


@dataclass(slots=True)
class Batch:
    """Sparse TF-IDF rows of a batch, plus what evidence needs."""

    n_docs: int
    doc: np.ndarray  # row of each non-zero
    col: np.ndarray  # feature index of each non-zero
    val: np.ndarray  # TF-IDF value (block-normalised and weighted)
    occ_entry: np.ndarray  # for each occurrence: its non-zero
    occ_unit: np.ndarray  # for each occurrence: its global unit
    occ_share: np.ndarray  # for each occurrence: its share of the non-zero's raw value
    unit_offsets: np.ndarray  # first global unit of each document (length n_docs + 1)


class LinearModel:
    """A multinomial logistic regression over blocks of TF-IDF features, in numpy."""

    def __init__(
        self,
        meta: dict[str, Any],
        vocab: dict[str, dict[str, int]],
        idf: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
    ) -> None:
        self.meta = meta
        self.cfg: dict[str, Any] = meta["features"]
        self.classes: list[str] = list(meta["classes"])
        self.vocab = vocab
        self.idf = idf.astype(np.float64)
        self.coef = coef.astype(np.float64)
        self.intercept = intercept.astype(np.float64)
        self.block_names: list[str] = sorted(vocab)
        self.block_of = np.zeros(len(idf), dtype=np.int64)
        for b, name in enumerate(self.block_names):
            self.block_of[list(vocab[name].values())] = b
        block_weights = self.cfg.get("block_weights", {})
        self.block_weight = np.array([float(block_weights.get(b, 1.0)) for b in self.block_names])
        # Blocks of a few counting features (the lexicon) keep their scale: normalising them
        # would give one faint, far-away lexicon word the weight of many close ones.
        raw = set(self.cfg.get("raw_blocks", ()))
        self.block_raw = np.array([b in raw for b in self.block_names])
        self.neutral_band = float(meta.get("neutral_band", 0.0))
        self._ids: dict[tuple[str, str], list[int]] = {}
        self._pos = self.classes.index("positive")
        self._neg = self.classes.index("negative")

    @property
    def n_features(self) -> int:
        """Return the vocabulary size."""
        return len(self.idf)

    def vectorize(self, docs: Sequence[Doc]) -> Batch:
        """Turn documents into block-normalised TF-IDF rows."""
        cols: list[int] = []
        g_len: list[int] = []
        g_unit: list[int] = []
        g_weight: list[float] = []
        g_doc: list[int] = []
        unit_offsets = [0]
        vocab = self.vocab
        cfg = self.cfg
        cache = self._ids
        if len(cache) > 200_000:
            cache.clear()
        for d, doc in enumerate(docs):
            base = unit_offsets[-1]
            for block, key, unit, weight in features(doc, cfg):
                table = vocab.get(block)
                if table is None:
                    continue
                if block == "c" or block == "e":
                    ids = cache.get((block, key))
                    if ids is None:
                        ids = [j for j in map(table.get, expand(block, key, cfg)) if j is not None]
                        cache[(block, key)] = ids
                    if not ids:
                        continue
                    cols.extend(ids)
                    g_len.append(len(ids))
                else:
                    j = table.get(key)
                    if j is None:
                        continue
                    cols.append(j)
                    g_len.append(1)
                g_unit.append(base + unit)
                g_weight.append(weight)
                g_doc.append(d)
            unit_offsets.append(base + 2 * len(doc.tokens))
        lengths = np.asarray(g_len, dtype=np.int64)
        occ_doc = np.repeat(np.asarray(g_doc, dtype=np.int64), lengths)
        occ_unit = np.repeat(np.asarray(g_unit, dtype=np.int64), lengths)
        occ_w = np.repeat(np.asarray(g_weight, dtype=np.float64), lengths)
        n_docs = len(docs)
        d_arr = occ_doc
        c_arr = np.asarray(cols, dtype=np.int64)
        w_arr = occ_w
        keys = d_arr * self.n_features + c_arr
        uniq, inv = np.unique(keys, return_inverse=True)
        raw = np.bincount(inv, weights=w_arr, minlength=len(uniq))
        doc = uniq // self.n_features
        col = uniq % self.n_features
        val = np.log1p(raw) * self.idf[col]
        nb = len(self.block_names)
        group = doc * nb + self.block_of[col]
        norm = np.sqrt(np.bincount(group, weights=val * val, minlength=n_docs * nb))
        denom = np.where(self.block_raw[self.block_of[col]], 1.0, norm[group])
        val = np.divide(val, denom, out=np.zeros_like(val), where=denom > 0)
        val *= self.block_weight[self.block_of[col]]
        share = np.divide(w_arr, raw[inv], out=np.zeros_like(w_arr), where=raw[inv] > 0)
        return Batch(
            n_docs=n_docs,
            doc=doc,
            col=col,
            val=val,
            occ_entry=inv,
            occ_unit=occ_unit,
            occ_share=share,
            unit_offsets=np.asarray(unit_offsets, dtype=np.int64),
        )

    def logits(self, batch: Batch) -> np.ndarray:
        """Return the class scores (n_docs x n_classes) before the softmax."""
        out = np.empty((batch.n_docs, len(self.classes)))
        for k in range(len(self.classes)):
            out[:, k] = np.bincount(
                batch.doc, weights=batch.val * self.coef[k, batch.col], minlength=batch.n_docs
            )
        return out + self.intercept

    def predict_proba(self, batch: Batch) -> np.ndarray:
        """Return class probabilities (softmax of the logits)."""
        z = self.logits(batch)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def unit_contributions(self, batch: Batch) -> np.ndarray:
        """Return, per global unit, its push on the positive-minus-negative logit."""
        direction = self.coef[self._pos] - self.coef[self._neg]
        entry = batch.val * direction[batch.col]
        per_occ = entry[batch.occ_entry] * batch.occ_share
        return np.bincount(batch.occ_unit, weights=per_occ, minlength=int(batch.unit_offsets[-1]))

    def decide(self, probs: np.ndarray) -> tuple[str, float, dict[str, float]]:
        """Return label, score and probabilities for one row of probabilities.

        A two-class model (negative, positive) reports neutral with probability 0, and says
        neutral only inside its neutral band."""
        p = {c: 0.0 for c in LABELS}
        p.update({c: float(probs[k]) for k, c in enumerate(self.classes)})
        score = p["positive"] - p["negative"]
        label = self.classes[int(np.argmax(probs))]
        if abs(score) < self.neutral_band:
            label = "neutral"
        return label, score, p

    def analyse_docs(self, docs: Sequence[Doc], explain: bool = True) -> list[SentimentResult]:
        """Classify documents and explain each with its strongest units."""
        if not docs:
            return []
        batch = self.vectorize(docs)
        probs = self.predict_proba(batch)
        contrib = self.unit_contributions(batch) if explain else None
        results = []
        for d, doc in enumerate(docs):
            label, score, p = self.decide(probs[d])
            evidence: list[tuple[str, float]] = []
            if contrib is not None:
                evidence = top_evidence(
                    doc, contrib[batch.unit_offsets[d] : batch.unit_offsets[d + 1]]
                )
            results.append(SentimentResult(label, score, p, evidence))
        return results

    def save(self, path: Path) -> None:
        """Write the model as compressed plain arrays (no pickles)."""
        keys: list[str] = []
        for name in self.block_names:
            items = sorted(self.vocab[name].items(), key=lambda kv: kv[1])
            keys.extend(f"{name}\t{k}" for k, _ in items)
        blob = "\n".join(keys).encode("utf-8")
        np.savez_compressed(
            path,
            meta=np.frombuffer(json.dumps(self.meta, ensure_ascii=False).encode(), dtype=np.uint8),
            vocab=np.frombuffer(blob, dtype=np.uint8),
            idf=self.idf.astype(np.float32),
            coef=self.coef.astype(np.float32),
            intercept=self.intercept.astype(np.float32),
        )

    @classmethod
    def load(cls, source: Path | Any) -> LinearModel:
        """Read a model written by `save`."""
        with np.load(source, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode("utf-8"))
            if meta.get("format") != MODEL_FORMAT:
                raise ValueError(f"unsupported model format {meta.get('format')!r}")
            lines = bytes(z["vocab"]).decode("utf-8").split("\n")
            vocab: dict[str, dict[str, int]] = {}
            for j, line in enumerate(lines):
                block, _, key = line.partition("\t")
                vocab.setdefault(block, {})[key] = j
            # Order in the file is the column order, so indices must follow the file.
            return cls(meta, vocab, z["idf"], z["coef"], z["intercept"])


def top_evidence(
    doc: Doc, contrib: np.ndarray, size: int = EVIDENCE_SIZE
) -> list[tuple[str, float]]:
    """Return the units with the largest absolute contributions, strongest first."""
    if contrib.size == 0:
        return []
    strength = np.abs(contrib)
    k = min(size * 2, strength.size)
    top = np.argpartition(-strength, k - 1)[:k]
    top = top[np.argsort(-strength[top], kind="stable")]
    out: list[tuple[str, float]] = []
    seen: set[str] = set()
    for u in top.tolist():
        c = float(contrib[u])
        if abs(c) < 1e-4:
            break
        name = doc.unit(u)
        if name in seen:
            continue
        seen.add(name)
        out.append((name, round(c, 4)))
        if len(out) == size:
            break
    return out


def doc_of(text: str, cfg: dict[str, Any]) -> Doc:
    """Return the document a sentence model sees for a text (links and handles cut for
    models trained on posts)."""
    return Doc(tokenize(strip_social(text) if cfg.get("social") else text))


def models_dir() -> Any:
    """Return the folder of shipped model files."""
    return resources.files("elshi.nlp") / "models"


_LOCK = threading.Lock()


@lru_cache(maxsize=8)
def load_model(name: str) -> LinearModel:
    """Load a shipped model by file stem, e.g. "sentiment-kk" (cached)."""
    with _LOCK, resources.as_file(models_dir() / f"{name}.npz") as path:
        return LinearModel.load(path)


@lru_cache(maxsize=16)
def _load_local(path: str, mtime_ns: int, size: int) -> LinearModel:
    """Load an operator's model file (cached until the file changes)."""
    try:
        model = LinearModel.load(Path(path))
    except Exception as exc:  # a damaged or foreign file: say which, do not guess
        raise ValueError(
            f"{path}: not a readable sentiment model ({exc}); train it again with "
            "`elshi train sentiment` or delete it"
        ) from None
    if not set(model.classes) <= set(LABELS) or not {"negative", "positive"} <= set(model.classes):
        raise ValueError(f"{path}: not a sentiment model (classes {model.classes})")
    return model


def local_models_dir(home: Path) -> Path:
    """Return the folder of operator-trained models inside a data home."""
    return Path(home) / "models"


def local_model(name: str, folder: Path | None) -> LinearModel | None:
    """Return the operator-trained model `folder/name.npz`, or None when there is none."""
    if folder is None:
        return None
    path = Path(folder) / f"{name}.npz"
    try:
        st = path.stat()
    except OSError:
        return None
    return _load_local(str(path), st.st_mtime_ns, st.st_size)


# ---------------------------------------------------------------------------------------------
# English stance: VADER on the clause of a mention (the sentence model is not target-aware
# and, trained on tweets, rates news clauses such as "the minister praised" neutral)


@lru_cache(maxsize=1)
def vader() -> Any:
    """Return the shared VADER analyser."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


_VADER_WORD = re.compile(r"[\w'’]+|[^\w\s]{2,}")


def vader_label(compound: float) -> str:
    """Map a VADER compound score to a label with the usual +-0.05 thresholds."""
    if compound >= VADER_THRESHOLD:
        return "positive"
    if compound <= -VADER_THRESHOLD:
        return "negative"
    return "neutral"


def analyse_english(text: str) -> SentimentResult:
    """Score English text with VADER; evidence is the lexicon valence of the words found."""
    analyser = vader()
    scores = analyser.polarity_scores(text)
    compound = float(scores["compound"])
    lexicon = analyser.lexicon
    evidence: dict[str, float] = {}
    for word in _VADER_WORD.findall(text.lower()):
        valence = lexicon.get(word)
        if valence is not None and word not in evidence:
            evidence[word] = round(float(valence) / 4.0, 4)
    ranked = sorted(evidence.items(), key=lambda kv: -abs(kv[1]))[:EVIDENCE_SIZE]
    probs = {"negative": scores["neg"], "neutral": scores["neu"], "positive": scores["pos"]}
    return SentimentResult(vader_label(compound), compound, probs, ranked)


# ---------------------------------------------------------------------------------------------
# Public API


def language_key(lang: str | None) -> str:
    """Return the primary language subtag in lower case ("kk-Latn" -> "kk")."""
    if not lang or not isinstance(lang, str):
        return ""
    return re.split(r"[-_]", lang.strip().lower(), maxsplit=1)[0]


def model_for(lang: str, local_dir: Path | None = None) -> LinearModel | None:
    """Return the sentence model of a language: the operator's own (in `local_dir`) if there
    is one, else the shipped one, else None (Chinese is never shipped)."""
    name = f"sentiment-{lang}"
    own = local_model(name, local_dir)
    if own is not None:
        return own
    if lang in LANGUAGES:
        return load_model(name)
    return None


def has_model(lang: str | None, local_dir: Path | None = None) -> bool:
    """Return whether texts in a language get a real sentiment (not the neutral fallback)."""
    key = language_key(lang)
    return bool(key) and (
        key in LANGUAGES or local_model(f"sentiment-{key}", local_dir) is not None
    )


def model_kind(lang: str | None, local_dir: Path | None = None) -> str:
    """Return "own" (operator-trained), "shipped" or "none" for a language's sentiment."""
    key = language_key(lang)
    if key and local_model(f"sentiment-{key}", local_dir) is not None:
        return "own"
    return "shipped" if key in LANGUAGES else "none"


def analyse(text: str | bytes, lang: str | None, local_dir: Path | None = None) -> SentimentResult:
    """Return the sentiment of one text in a language (neutral where there is no model)."""
    return analyse_batch([text], [lang], local_dir=local_dir)[0]


def analyse_batch(
    texts: Sequence[str | bytes],
    langs: Sequence[str | None] | str | None,
    explain: bool = True,
    local_dir: Path | None = None,
) -> list[SentimentResult]:
    """Return the sentiment of many texts, one model pass per language.

    `local_dir` is the folder of operator-trained models (`elshi train sentiment`)."""
    if isinstance(langs, str) or langs is None:
        langs = [langs] * len(texts)
    if len(langs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(langs)} languages")
    results = [neutral_result() for _ in texts]
    by_lang: dict[str, list[int]] = {}
    for i, lang in enumerate(langs):
        by_lang.setdefault(language_key(lang), []).append(i)
    for lang, idx in by_lang.items():
        model = model_for(lang, local_dir) if lang else None
        if model is None:
            continue
        docs = [doc_of(clean_text(texts[i]), model.cfg) for i in idx]
        keep = [k for k, doc in enumerate(docs) if doc.tokens]
        out = model.analyse_docs([docs[k] for k in keep], explain=explain)
        for k, res in zip(keep, out, strict=True):
            results[idx[k]] = res
    return results


def idf_from_df(df: np.ndarray, n_docs: int) -> np.ndarray:
    """Return smoothed inverse document frequencies (as scikit-learn computes them)."""
    return np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
