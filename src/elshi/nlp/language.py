"""Offline language identification for kk (Cyrillic, Latin, typed without Kazakh letters), ru, en,
zh, ar, with ky, uz, uk, tr, mn as distractors.

Cheap rules decide first (script, language-specific letters), then two statistical opinions are
fused for the hard cases: lingua-language-detector restricted to the languages in use, and our own
character n-gram naive Bayes model (shipped in `models/langid_ngrams.npz`) which is the only one
that knows Latin-script Kazakh, Kazakh typed without Kazakh letters, Kyrgyz and Uzbek.
Everything here is pure and thread-safe; the models are loaded once, lazily.
"""

from __future__ import annotations

import json
import math
import re
import threading
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from elshi.nlp.base import ProcessWide

MODEL_PATH = Path(__file__).parent / "models" / "langid_ngrams.npz"
#: Only this prefix is analysed: a 1 MB post costs no more than a long article.
MAX_CHARS = 3000
#: Fewer letters than this (Han characters count three) is "und".
MIN_LETTERS = 3
#: Below this many letters the score is damped.
SHORT_LETTERS = 15
#: A sentence needs this many letters to vote on mixing.
SEGMENT_MIN_LETTERS = 12
#: Share of the voting letters a second language needs to be reported in `mixed`.
MIXED_MIN_SHARE = 0.25
#: How much our n-gram model counts against lingua for the languages both know: little where
#: Kazakh letters already tell (lingua is near perfect there), more where they are missing.
NB_WEIGHT_LETTERS = 0.25
NB_WEIGHT_PLAIN = 0.6
#: Latin words inside Cyrillic posts are mostly names and brands: they weigh less.
LATIN_IN_CYRILLIC_WEIGHT = 0.5
UND = "und"
#: Distinct words whose n-gram rows are remembered before the memory is emptied.
WORD_CACHE = 200_000

KK_UNIQUE = "әғқұһ"
KK_SHARED = "ңөүі"
UK_UNIQUE = "їєґ"
UZ_CYRL = "ўҳ"
RU_NOT_UK = "ыэъё"
# Kazakh words that Russian does not have (function words and common verb forms, written
# with letters both alphabets share or with only ғ/қ), and the case endings Kazakh puts on
# country names in -ия (Германияда, Францияның): evidence where no other letter tells.
KK_CUE_WORDS = frozenset(
    [
        "немесе",
        "деп",
        "деген",
        "деді",
        "бен",
        "пен",
        "мен",
        "бойынша",
        "туралы",
        "арасында",
        "дейін",
        "шейін",
        "ол",
        "олар",
        "осы",
        "сол",
        "керек",
        "еді",
        "екен",
        "болып",
        "болды",
        "болса",
        "болатын",
        "болған",
        "алды",
        "атты",
        "аталатын",
        "аталған",
        "сияқты",
        "және",
        "бірақ",
        "үшін",
        "бұл",
        "қайда",
        "қалай",
        "қазір",
        "қарай",
        "қатысты",
        "ғана",
        "тағы",
    ]
)
KK_CUE_ENDINGS = ("ияда", "иядан", "ияның", "ияны", "иямен", "ияға", "иядағы")
# Russian function words that Kazakh text does not use outside quotations.
RU_CUE_WORDS = frozenset(
    [
        "и",
        "в",
        "на",
        "не",
        "что",
        "это",
        "с",
        "по",
        "для",
        "как",
        "из",
        "от",
        "к",
        "за",
        "у",
        "но",
        "он",
        "она",
        "они",
        "мы",
        "вы",
        "я",
        "был",
        "была",
        "были",
        "быть",
        "есть",
        "также",
        "уже",
        "еще",
        "ещё",
        "или",
        "если",
        "только",
        "при",
        "до",
        "так",
        "все",
        "всё",
        "его",
        "ее",
        "её",
        "их",
        "который",
        "которые",
        "которая",
        "которого",
        "чтобы",
        "после",
        "года",
        "году",
        "может",
        "более",
    ]
)
SR_MK = "ђћџљњјѓќѕ"
KK_LATN_UNIQUE = "äñŋūǵńś"
TR_LATN_UNIQUE = "çâîû"
TURKIC_LATN = "ışğöü"
KK_ARAB = "\u0675\u0676\u0677"  # ٵ ٶ ٷ: hamza letters only Kazakh Arabic script uses
UG_ARAB = "\u06d0\u06c6\u06c8\u06cb"  # ې ۆ ۈ ۋ
UR_ARAB = "\u0679\u0688\u0691\u06ba\u06d2"  # ٹ ڈ ڑ ں ے
FA_ARAB = "\u067e\u0686\u0698\u06af\u06a9\u06cc"  # پ چ ژ گ ک ی

_SCRIPT_LANG = {"Hang": "ko", "Grek": "el", "Hebr": "he", "Geor": "ka", "Armn": "hy", "Thai": "th"}

_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02af\u1e00-\u1eff"
_CYRIL = "\u0400-\u052f"
_ARAB = "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff"
_APOS = "'’ʻʼ‘`"
_TOKEN = re.compile(
    rf"(?P<Latn>[{_LATIN}]+(?:[{_APOS}][{_LATIN}]+)*[{_APOS}]?)"
    rf"|(?P<Cyrl>[{_CYRIL}]+(?:[{_APOS}][{_CYRIL}]+)*)"
    rf"|(?P<Arab>[{_ARAB}]+)"
    # Without the middle dot "・" (U+30FB): Chinese writes transliterated names with it too.
    r"|(?P<Kana>[\u3040-\u30fa\u30fc-\u30ff\u31f0-\u31ff]+)"
    r"|(?P<Hani>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+)"
    r"|(?P<Hang>[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]+)"
    r"|(?P<Grek>[\u0370-\u03ff]+)"
    r"|(?P<Hebr>[\u0590-\u05ff]+)"
    r"|(?P<Geor>[\u10a0-\u10ff]+)"
    r"|(?P<Armn>[\u0531-\u058f]+)"
    r"|(?P<Thai>[\u0e00-\u0e7f]+)"
    r"|(?P<Zyyy>[^\W\d_]+)"
    r"|(?P<brk>[.!?…。！？\n]+)"
)
# Links end at the first non-ASCII character (posts glue text to them: "http://t.cn/x正文",
# "(https://t.me/x)Текст"); handles and hashtags stop before Han, kana and Hangul ("#话题#正文"
# is Weibo's topic and text); Weibo emoticon codes such as "[good]" are not words.
_NOISE = re.compile(
    r"https?://[!-~]+|www\.[!-~]+|[!-~]+@[!-~]+\.[A-Za-z]+"
    r"|[@#][^\W\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+"
    r"|\[[A-Za-z]{1,12}\](?!\()|&[a-z]+;|\bRT\b|[\ud800-\udfff\ufffd]"
)
_MIXED_WORD = re.compile(rf"[{_LATIN}{_CYRIL}]*(?:[{_LATIN}][{_CYRIL}]|[{_CYRIL}][{_LATIN}])\w*")
_LAT2CYR = str.maketrans("AaBEeKkMHOoPpCcTyXxIiƏə", "АаВЕеКкМНОоРрСсТуХхІіӘә")
_CYR2LAT = str.maketrans("АаВЕеКкМНОоРрСсТуХхІіӘә", "AaBEeKkMHOoPpCcTyXxIiƏə")
_FEATURE_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
_APOS_TABLE = str.maketrans({c: "'" for c in _APOS})

_NAMES = {
    "kk": "Kazakh",
    "ru": "Russian",
    "en": "English",
    "zh": "Chinese",
    "ar": "Arabic",
    "ky": "Kyrgyz",
    "uz": "Uzbek",
    "uk": "Ukrainian",
    "tr": "Turkish",
    "mn": "Mongolian",
    "fa": "Persian",
    "ur": "Urdu",
    "ug": "Uyghur",
    "ja": "Japanese",
    "ko": "Korean",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "sr": "Serbian",
    "mk": "Macedonian",
}
_LINGUA_CYRL = ("kk", "ru", "uk", "mn")
_LINGUA_LATN = ("en", "tr", "es", "fr", "de")


@dataclass(slots=True)
class LangResult:
    """What language a text is in, how sure we are, and why."""

    lang: str
    score: float
    script: str
    mixed: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)


def normalize(text: str) -> str:
    """Return NFC text with lone surrogates and U+FFFD dropped and apostrophes unified."""
    text = _NOISE.sub(" ", text)
    text = unicodedata.normalize("NFC", text).replace("İ", "i").replace("I\u0307", "i")
    return text.translate(_APOS_TABLE)


def word_ngrams(word: str) -> list[str]:
    """Return the n-gram features of one lower-case word (1-4 within the padded word, plus it)."""
    padded = f" {word} "
    length = len(padded)
    feats = [padded[i : i + n] for n in (1, 2, 3, 4) for i in range(length - n + 1)]
    if 4 < length <= 17:
        feats.append(padded)
    return [g for g in feats if g != " "]


def ngrams(text: str) -> list[str]:
    """Return the character n-gram features (1-4 within padded words, plus whole words)."""
    feats: list[str] = []
    for word in _FEATURE_WORD.findall(text.lower()):
        feats.extend(word_ngrams(word))
    return feats


def _fix_homoglyphs(text: str) -> str:
    """Turn Latin look-alikes inside Cyrillic words into Cyrillic (and back for Latin words)."""

    def fix(match: re.Match[str]) -> str:
        word = match.group(0)
        cyr = sum(1 for ch in word if "\u0400" <= ch <= "\u052f")
        lat = sum(1 for ch in word if ch.isalpha()) - cyr
        return word.translate(_LAT2CYR if cyr >= lat else _CYR2LAT)

    return _MIXED_WORD.sub(fix, text)


@dataclass(slots=True)
class _Segment:
    script: str
    words: list[str]
    letters: int


def _segments(text: str) -> list[_Segment]:
    """Split text into runs of one script within one sentence."""
    segs: list[_Segment] = []
    current: _Segment | None = None
    for m in _TOKEN.finditer(text):
        script = m.lastgroup or "Zyyy"
        if script == "brk":
            current = None
            continue
        word = m.group(0)
        if script in ("Hani", "Kana"):
            weight = 3 * len(word)
            script = "Hani" if script == "Hani" else "Kana"
        else:
            weight = len(word)
        if current is not None and (
            current.script == script or {current.script, script} == {"Hani", "Kana"}
        ):
            current.words.append(word)
            current.letters += weight
            if script == "Kana":
                current.script = "Kana"
        else:
            current = _Segment(script, [word], weight)
            segs.append(current)
    return segs


class _NaiveBayes:
    """Character n-gram naive Bayes read from a portable .npz (no pickle)."""

    def __init__(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as data:
            self.classes: list[str] = [str(c) for c in data["classes"]]
            self.logp = data["logp"].astype(np.float32)
            self.index = {str(g): i for i, g in enumerate(data["ngrams"])}
            self.meta: dict[str, Any] = json.loads(str(data["meta"]))
        self.temperature = float(self.meta.get("temperature", 8.0))
        #: Model rows of each word's n-grams: words repeat, their n-grams need not be cut again.
        self._rows: dict[str, list[int]] = {}

    def _word_rows(self, word: str) -> list[int]:
        """Return (and remember) the model rows of a word's n-grams, in feature order."""
        rows = [i for i in map(self.index.get, word_ngrams(word)) if i is not None]
        if len(self._rows) >= WORD_CACHE:
            self._rows.clear()
        self._rows[word] = rows
        return rows

    def scores(self, text: str) -> tuple[dict[str, float], int]:
        """Return each class's mean log-likelihood per n-gram and how many n-grams counted."""
        rows: list[int] = []
        cache = self._rows
        for word in _FEATURE_WORD.findall(text.lower()):
            found = cache.get(word)
            if found is None:
                found = self._word_rows(word)
            rows.extend(found)
        if not rows:
            return dict.fromkeys(self.classes, 0.0), 0
        total = self.logp[rows].sum(axis=0) / len(rows)
        return dict(zip(self.classes, total.tolist(), strict=True)), len(rows)

    def probs(
        self, scores: dict[str, float], candidates: Sequence[str], script: str
    ) -> dict[str, float]:
        """Softmax the scores of the candidate languages' models for this script."""
        present = [c for c in candidates if f"{c}-{script}" in scores]
        if not present:
            return {}
        top = max(scores[f"{c}-{script}"] for c in present)
        exp = {c: math.exp(self.temperature * (scores[f"{c}-{script}"] - top)) for c in present}
        norm = sum(exp.values())
        return {c: v / norm for c, v in exp.items()}


class LanguageIdentifier:
    """Rules + lingua + our n-gram model; use the module-level `detect` unless testing a model."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        nb_weight_letters: float = NB_WEIGHT_LETTERS,
        nb_weight_plain: float = NB_WEIGHT_PLAIN,
    ) -> None:
        self.model_path = model_path or MODEL_PATH
        self.nb_weight_letters = nb_weight_letters
        self.nb_weight_plain = nb_weight_plain
        self._lock = threading.Lock()
        self._nb: _NaiveBayes | None = None
        self._lingua: dict[str, Any] | None = None
        #: ISO code of each lingua language object (read once: the attribute chain is slow).
        self._codes: dict[Any, str] = {}

    def _load(self) -> tuple[_NaiveBayes, dict[str, Any]]:
        if self._nb is None or self._lingua is None:
            with self._lock:
                if self._lingua is None:
                    from lingua import IsoCode639_1, LanguageDetectorBuilder

                    def build(codes: Sequence[str]) -> Any:
                        isos = [getattr(IsoCode639_1, c.upper()) for c in codes]
                        return LanguageDetectorBuilder.from_iso_codes_639_1(*isos).build()

                    self._lingua = {"Cyrl": build(_LINGUA_CYRL), "Latn": build(_LINGUA_LATN)}
                if self._nb is None:
                    self._nb = _NaiveBayes(self.model_path)
        return self._nb, self._lingua

    # -- public API -------------------------------------------------------------------------

    def detect(self, text: str) -> LangResult:
        """Return the language of one text; never raises on odd input."""
        if not isinstance(text, str) or not text.strip():
            return LangResult(UND, 0.0, "Zyyy", [], ["empty text"])
        features: list[str] = []
        if len(text) > MAX_CHARS:
            features.append(f"analysed the first {MAX_CHARS} of {len(text)} characters")
            text = text[:MAX_CHARS]
        text = normalize(text)
        if _MIXED_WORD.search(text):
            text = _fix_homoglyphs(text)
        segs = _segments(text)
        by_script: dict[str, float] = defaultdict(float)
        for seg in segs:
            by_script[seg.script] += seg.letters
        if "Cyrl" in by_script and "Latn" in by_script:
            by_script["Latn"] *= LATIN_IN_CYRILLIC_WEIGHT
        total = sum(by_script.values())
        if total < MIN_LETTERS:
            features.append(f"too little text: {total:g} letters")
            return LangResult(UND, 0.0, _top(by_script), [], features)
        script = _top(by_script)
        words = [w for s in segs if s.script == script for w in s.words]
        lang, score, why = self._classify(script, words)
        features.extend(why)
        if total < SHORT_LETTERS:
            # Few letters carry little evidence whatever the models say.
            score *= 0.5 + 0.5 * total / SHORT_LETTERS
            features.append(f"short text: {total:g} letters")
        votes = self._mixed(segs, lang)
        if votes:
            counted = sum(votes.values())
            lang = max(votes, key=lambda k: votes[k])
            score = votes[lang] / counted
            shares = ", ".join(f"{k} {v / counted:.2f}" for k, v in votes.items())
            features.append(f"mixed by sentence votes: {shares}")
            return LangResult(lang, round(score, 4), script, list(votes), features)
        return LangResult(lang, round(score, 4), script, [], features)

    def detect_batch(self, texts: Iterable[str]) -> list[LangResult]:
        """Return one result per text, in order."""
        self._load()
        return [self.detect(t) for t in texts]

    # -- internals --------------------------------------------------------------------------

    def _mixed(self, segs: list[_Segment], main: str) -> dict[str, float] | None:
        """Return letter votes per language when a second language holds a real share.

        Each sentence run long enough votes with its letters; shorter or unsure runs count for
        the language of the whole text. Latin runs in Cyrillic posts weigh less (names, brands).
        """
        if len(segs) < 2:
            return None
        discount = LATIN_IN_CYRILLIC_WEIGHT if any(s.script == "Cyrl" for s in segs) else 1.0
        weights = [s.letters * (discount if s.script == "Latn" else 1.0) for s in segs]
        # Only runs long enough to vote can give a second language its share: when what they
        # could still add cannot reach the share, the answer is "not mixed" without asking
        # the models about them (the margin keeps rounding from ever deciding it).
        needed = MIXED_MIN_SHARE * sum(weights) * (1 - 1e-9)
        voting = [s.letters >= SEGMENT_MIN_LETTERS for s in segs]
        left = sum(w for w, v in zip(weights, voting, strict=True) if v)
        votes: dict[str, float] = defaultdict(float)
        other = 0.0
        for seg, weight, votes_alone in zip(segs, weights, voting, strict=True):
            lang = main
            if votes_alone:
                if other + left < needed:
                    return None
                left -= weight
                seg_lang, score, _ = self._classify(seg.script, seg.words)
                if seg_lang != UND and score >= 0.6:
                    lang = seg_lang
                if lang != main:
                    other = max(other, votes[lang] + weight)
            votes[lang] += weight
        counted = sum(votes.values())
        ranked = sorted(votes.items(), key=lambda kv: -kv[1])
        kept = {k: v for k, v in ranked if k != UND and v / counted >= MIXED_MIN_SHARE}
        return kept if len(kept) >= 2 else None

    def _classify(self, script: str, words: list[str]) -> tuple[str, float, list[str]]:
        chunk = " ".join(words)
        if script == "Cyrl":
            return self._cyrillic(chunk)
        if script == "Latn":
            return self._latin(chunk)
        if script == "Arab":
            return _arabic(chunk)
        if script == "Hani":
            return "zh", 0.95, ["Han characters without kana"]
        if script == "Kana":
            return "ja", 0.95, ["Japanese kana"]
        if script in _SCRIPT_LANG:
            return _SCRIPT_LANG[script], 0.9, [f"{script} script"]
        return UND, 0.0, [f"unsupported script {script}"]

    def _fuse(
        self,
        script: str,
        chunk: str,
        candidates: Sequence[str],
        nb_only: Sequence[str],
        why: list[str],
        *,
        letters: bool = False,
    ) -> tuple[str, float, list[str]]:
        """Fuse lingua and the n-gram model over the candidates; nb_only are unknown to lingua."""
        nb, lingua = self._load()
        if len(candidates) == 1:
            return candidates[0], 0.97, why
        scores, counted = nb.scores(chunk)
        p_nb = nb.probs(scores, candidates, script)
        shared = [c for c in candidates if c not in nb_only]
        weight = self.nb_weight_letters if letters else self.nb_weight_plain
        fused = {c: p_nb.get(c, 0.0) for c in candidates if c in nb_only}
        rest = 1.0 - sum(fused.values())
        if shared:
            conf = lingua[script].compute_language_confidence_values(chunk)
            codes = self._codes
            p_li = {}
            for v in conf:
                code = codes.get(v.language)
                if code is None:
                    code = codes[v.language] = v.language.iso_code_639_1.name.lower()
                if code in shared:
                    p_li[code] = v.value
            li_norm = sum(p_li.values())
            nb_norm = sum(p_nb.get(c, 0.0) for c in shared)
            # Weighted geometric mean: either opinion can veto a language the other favours.
            mix: dict[str, float] = {}
            for c in shared:
                a = p_nb.get(c, 0.0) / nb_norm if nb_norm > 0 else 1.0 / len(shared)
                b = p_li.get(c, 0.0) / li_norm if li_norm > 0 else a
                # max(x, 1e-4) written out: the same value, without a call per language.
                a = 1e-4 if a < 1e-4 else a
                b = 1e-4 if b < 1e-4 else b
                mix[c] = a**weight * b ** (1 - weight)
            mix_norm = sum(mix.values())
            for c in shared:
                fused[c] = rest * mix[c] / mix_norm
            top_li = max(p_li, key=lambda k: p_li[k]) if li_norm > 0 else None
            if top_li:
                why.append(f"lingua: {top_li} {p_li[top_li] / li_norm:.2f}")
        lang = max(fused, key=lambda k: fused[k])
        if counted:
            top_nb = max(p_nb, key=lambda k: p_nb[k])
            why.append(f"char n-gram model: {top_nb}-{script} {p_nb[top_nb]:.2f}")
        return lang, fused[lang], why

    @staticmethod
    def _word_cues(chunk: str) -> tuple[list[str], list[str]]:
        """Kazakh-only and Russian-only words of a chunk.

        A cue word written with a capital inside the chunk is a name, not a cue ("Марин Ле
        Пен"); case endings count on names too ("Германияда")."""
        raw = chunk.split()
        words = [w.lower() for w in raw]
        names = {i for i, w in enumerate(raw) if i > 0 and w[:1].isupper()}
        kk = [
            w
            for i, w in enumerate(words)
            if (w in KK_CUE_WORDS and i not in names) or w.endswith(KK_CUE_ENDINGS)
        ]
        ru = [w for w in words if w in RU_CUE_WORDS]
        return kk, ru

    def _cyrillic(self, chunk: str) -> tuple[str, float, list[str]]:
        low = chunk.lower()
        found = {
            ch
            for ch in KK_UNIQUE + KK_SHARED + UK_UNIQUE + UZ_CYRL + RU_NOT_UK + SR_MK
            if ch in low
        }
        kk_u = sorted(found & set(KK_UNIQUE))
        shared = sorted(found & set(KK_SHARED))
        why: list[str] = []
        if found & set(SR_MK):
            lang = "mk" if found & set("ѓќѕ") else "sr"
            return lang, 0.9, [f"{_NAMES[lang]} letters {','.join(sorted(found & set(SR_MK)))}"]
        if found & set(UZ_CYRL) and not found & set("әұһің"):
            return "uz", 0.95, [f"Uzbek letters {','.join(sorted(found & set(UZ_CYRL)))}"]
        if found & set(UK_UNIQUE) and not kk_u and not found & set(RU_NOT_UK):
            return "uk", 0.97, [f"Ukrainian letters {','.join(sorted(found & set(UK_UNIQUE)))}"]
        if kk_u and set(kk_u) <= set("ғқ") and not found & set("ңөүі"):
            why.append(f"letters {','.join(kk_u)} without ә,ұ,һ,і,ң,ө,ү: Kazakh or Uzbek")
            kk_words, ru_words = self._word_cues(chunk)
            if kk_words and not ru_words:
                why.append(f"Kazakh words {','.join(sorted(set(kk_words)))}")
                return self._fuse("Cyrl", chunk, ("kk", "uz"), ("uz",), why, letters=True)
            return self._fuse("Cyrl", chunk, ("kk", "uz", "ru"), ("uz",), why, letters=True)
        if kk_u:
            why.append(f"Kazakh letters {','.join(kk_u + shared)}")
            return self._fuse("Cyrl", chunk, ("kk", "ru"), (), why, letters=True)
        if "і" in found and not found & set(RU_NOT_UK) and not found & set("ңөү"):
            why.append("і without ы,э,ъ,ё: Kazakh or Ukrainian")
            return self._fuse("Cyrl", chunk, ("kk", "uk", "ru"), (), why, letters=True)
        if "і" in found:
            why.append(f"Kazakh letters {','.join(shared)}")
            return self._fuse("Cyrl", chunk, ("kk", "ru"), (), why, letters=True)
        if found & set("өү"):
            if "ң" in found:
                why.append("ң,ө/ү without ә,ғ,қ,ұ,һ,і: Kyrgyz or Kazakh")
                return self._fuse("Cyrl", chunk, ("ky", "kk"), ("ky",), why)
            why.append("ө/ү without ә,ғ,қ,ұ,һ,і,ң: Mongolian, Kyrgyz or Kazakh")
            return self._fuse("Cyrl", chunk, ("mn", "ky", "kk"), ("ky",), why)
        if "ң" in found:
            why.append("ң without other Kazakh letters")
            return self._fuse("Cyrl", chunk, ("kk", "ky"), ("ky",), why)
        why.append("no language-specific Cyrillic letters")
        kk_words, ru_words = self._word_cues(chunk)
        if kk_words and not ru_words:
            why.append(f"Kazakh words {','.join(sorted(set(kk_words)))}")
            return self._fuse("Cyrl", chunk, ("kk", "ky"), ("ky",), why)
        cands: tuple[str, ...] = ("ru", "kk", "ky", "mn")
        if not found & set(RU_NOT_UK):
            cands = (*cands, "uk")
        return self._fuse("Cyrl", chunk, cands, ("ky",), why)

    def _latin(self, chunk: str) -> tuple[str, float, list[str]]:
        low = chunk.lower()
        kk_u = sorted({ch for ch in KK_LATN_UNIQUE if ch in low})
        tr_u = sorted({ch for ch in TR_LATN_UNIQUE if ch in low})
        turkic = sorted({ch for ch in TURKIC_LATN if ch in low})
        uz_apos = "o'" in low or "g'" in low
        why: list[str] = []
        if kk_u and not tr_u:
            why.append(f"Kazakh Latin letters {','.join(kk_u)}")
            return self._fuse("Latn", chunk, ("kk", "en", "tr", "de", "es"), ("kk",), why)
        if tr_u:
            why.append(f"Turkish letters {','.join(tr_u)}")
            return self._fuse("Latn", chunk, ("tr", "en", "fr", "kk"), ("kk",), why)
        if turkic:
            why.append(f"Turkic Latin letters {','.join(turkic)}: Turkish or Kazakh")
            return self._fuse("Latn", chunk, ("tr", "kk", "en", "de"), ("kk",), why)
        if uz_apos:
            why.append("Uzbek oʻ/gʻ")
            return self._fuse("Latn", chunk, ("uz", "en", "kk"), ("uz", "kk"), why)
        return self._fuse(
            "Latn", chunk, ("en", "kk", "tr", "uz", "es", "fr", "de"), ("kk", "uz"), why
        )


def _arabic(chunk: str) -> tuple[str, float, list[str]]:
    """Tell Arabic from Kazakh/Uyghur/Urdu/Persian Arabic-script text by letters."""
    kk = sorted({ch for ch in KK_ARAB if ch in chunk})
    if kk:
        return "kk", 0.9, [f"Kazakh Arabic-script letters {','.join(kk)}"]
    ug = sorted({ch for ch in UG_ARAB if ch in chunk})
    if ug:
        return "ug", 0.85, [f"Uyghur letters {','.join(ug)}"]
    ur = sorted({ch for ch in UR_ARAB if ch in chunk})
    if ur:
        return "ur", 0.85, [f"Urdu letters {','.join(ur)}"]
    fa = [ch for ch in chunk if ch in FA_ARAB]
    if len(fa) >= 2:
        return "fa", 0.85, [f"Persian letters {','.join(sorted(set(fa)))}"]
    return "ar", 0.95, ["Arabic script without Persian/Urdu/Kazakh letters"]


def _top(counts: dict[str, float]) -> str:
    return max(counts, key=lambda k: counts[k]) if counts else "Zyyy"


_default: ProcessWide[LanguageIdentifier] = ProcessWide(LanguageIdentifier)


def default_identifier() -> LanguageIdentifier:
    """Return the process-wide identifier with the shipped model."""
    return _default.get()


def detect(text: str) -> LangResult:
    """Return the language of one text (ISO 639-1 code or "und")."""
    return default_identifier().detect(text)


def detect_batch(texts: Iterable[str]) -> list[LangResult]:
    """Return the language of each text, in order."""
    return default_identifier().detect_batch(texts)


def evaluate(
    pairs: Iterable[tuple[str, str]], identifier: LanguageIdentifier | None = None
) -> dict[str, Any]:
    """Score detection on (text, gold) pairs: accuracy, macro-F1, per language, confusion."""
    ident = identifier or default_identifier()
    gold: list[str] = []
    texts: list[str] = []
    for text, lang in pairs:
        texts.append(text)
        gold.append(lang)
    results = ident.detect_batch(texts)
    scores = score_predictions(gold, [r.lang for r in results])
    flagged = sum(1 for r in results if r.mixed)
    scores["mixed_rate"] = round(flagged / len(results), 4) if results else 0.0
    return scores


def score_predictions(gold: Sequence[str], pred: Sequence[str]) -> dict[str, Any]:
    """Return accuracy, macro-F1 over gold languages, per-language P/R/F1 and confusion."""
    from elshi.nlp.evaluate import report

    rep = report(gold, pred)
    per = {
        lang: {
            "precision": round(v["precision"], 4),
            "recall": round(v["recall"], 4),
            "f1": round(v["f1"], 4),
            "support": v["support"],
        }
        for lang, v in rep["per_label"].items()
    }
    return {
        "n": rep["n"],
        "accuracy": round(rep["accuracy"], 4),
        "macro_f1": round(sum(v["f1"] for v in per.values()) / len(per), 4) if per else 0.0,
        "per_language": per,
        "confusion": rep["confusion"],
    }
