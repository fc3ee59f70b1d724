"""Scripts of a text, Kazakh Cyrillic to Latin, and the folding that matching compares by.

Shared by the gazetteer, entity recognition and watch terms. Pure functions and tables.
"""

from __future__ import annotations

import re
import unicodedata

# --------------------------------------------------------------------------------------------
# Script helpers and folding.
# --------------------------------------------------------------------------------------------
_CYR_FOLD_CASED = str.maketrans("ӘәҒғҚқҢңӨөҰұҮүҺһІіЁё", "АаГгКкНнОоУуУуХхИиЕе")
_FOLD = str.maketrans(
    {
        "ё": "е",
        "ә": "а",
        "ғ": "г",
        "қ": "к",
        "ң": "н",
        "ө": "о",
        "ұ": "у",
        "ү": "у",
        "һ": "х",
        "і": "и",
        "q": "k",
        "ı": "i",
        "’": "'",
        "ʼ": "'",
    }
)
_LAT2CYR = str.maketrans("AaBEeKkMHOoPpCcTyXxIi", "АаВЕеКкМНОоРрСсТуХхІі")
_HAS_CYR = re.compile(r"[\u0400-\u052f]")
_HAS_LAT = re.compile(r"[A-Za-z]")
_LATIN_EXT = re.compile(r"[\u00c0-\u024f\u1e00-\u1eff]")
_KK_LETTERS = re.compile(r"[әғқңөұүһіӘҒҚҢӨҰҮҺІ]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_ARABIC = re.compile(r"[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")
_WORD = re.compile(r"[^\W_]+")
_AR_DIACRITICS = set("\u064b\u064c\u064d\u064e\u064f\u0650\u0651\u0652\u0670\u0640")
_AR_FOLD = str.maketrans("أإآٱىة", "اااايه")
_AR_LETTERS = "\u0621-\u064a\u066e-\u06d3"

#: Kazakh case endings that names take as well as common words (genitive, dative, ablative,
#: instrumental, locative-attributive): stripped to find a name's id or a query word's stem.
KK_CASE_ENDINGS = (
    "ның",
    "нің",
    "дың",
    "дің",
    "тың",
    "тің",
    "ға",
    "ге",
    "қа",
    "ке",
    "дан",
    "ден",
    "тан",
    "тен",
    "нан",
    "нен",
    "мен",
    "бен",
    "пен",
    "дағы",
    "дегі",
    "тағы",
    "тегі",
    "ндағы",
    "ндегі",
)

#: Kazakh Cyrillic -> the official 2021 Latin alphabet (also used to train language ID).
KK_LATIN_2021 = {
    "а": "a",
    "ә": "ä",
    "б": "b",
    "в": "v",
    "г": "g",
    "ғ": "ğ",
    "д": "d",
    "е": "e",
    "ё": "io",
    "ж": "j",
    "з": "z",
    "и": "i",
    "й": "i",
    "к": "k",
    "қ": "q",
    "л": "l",
    "м": "m",
    "н": "n",
    "ң": "ñ",
    "о": "o",
    "ө": "ö",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ұ": "ū",
    "ү": "ü",
    "ф": "f",
    "х": "h",
    "һ": "h",
    "ц": "ts",
    "ч": "ch",
    "ш": "ş",
    "щ": "şş",
    "ъ": "",
    "ы": "y",
    "і": "ı",
    "ь": "",
    "э": "e",
    "ю": "iu",
    "я": "ia",
}
_KK_LAT_INFORMAL = {
    **KK_LATIN_2021,
    "ж": "zh",
    "ш": "sh",
    "щ": "sh",
    "й": "y",
    "ю": "yu",
    "я": "ya",
    "х": "kh",
    "қ": "k",
}


_LAT_TRANS = {
    False: str.maketrans(dict(KK_LATIN_2021)),
    True: str.maketrans(dict(_KK_LAT_INFORMAL)),
}


def kk_to_latin(text: str, informal: bool = False) -> str:
    """Transliterate Kazakh Cyrillic to the 2021 Latin alphabet (or a common informal spelling)."""
    if text == text.lower():
        # No capitals to carry over: one C-level pass with the same table.
        return text.translate(_LAT_TRANS[informal])
    table = _KK_LAT_INFORMAL if informal else KK_LATIN_2021
    out = []
    for ch in text:
        low = ch.lower()
        rep = table.get(low)
        if rep is None:
            out.append(ch)
        elif ch != low and rep:
            out.append(rep[0].upper() + rep[1:])
        else:
            out.append(rep)
    return "".join(out)


def fold(token: str) -> str:
    """Return the matching key of a word: lower case, Kazakh letters as Russian ones, no accents."""
    if _HAS_CYR.search(token) and _HAS_LAT.search(token):
        token = token.translate(_LAT2CYR)
    out = token.lower().translate(_FOLD)
    if not out.isascii() and _LATIN_EXT.search(out):
        out = "".join(
            c for c in unicodedata.normalize("NFKD", out) if not unicodedata.combining(c)
        ).translate(_FOLD)
    return out


def _case_key(token: str) -> str:
    """Return a token with Kazakh letters and ё mapped to Russian ones, keeping case."""
    if _HAS_CYR.search(token) and _HAS_LAT.search(token):
        token = token.translate(_LAT2CYR)
    return token.translate(_CYR_FOLD_CASED)


def script_of(text: str) -> str:
    """Return "Hani", "Arab", "Cyrl" or "Latn" for an alias (by its first telling character)."""
    if _HAN.search(text):
        return "Hani"
    if _ARABIC.search(text):
        return "Arab"
    if _HAS_CYR.search(text):
        return "Cyrl"
    return "Latn"


def _is_abbr(token: str) -> bool:
    letters = [c for c in token if c.isalpha()]
    if not letters:
        return False
    upper = all(c.isupper() for c in letters)
    return upper and (len(letters) >= 2 or any(c.isdigit() for c in token))


def _fold_ar(text: str) -> tuple[str, list[int]]:
    """Return Arabic text without diacritics and with unified letters, and each char's offset."""
    chars: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if ch in _AR_DIACRITICS:
            continue
        chars.append(ch)
        index.append(i)
    return "".join(chars).translate(_AR_FOLD), index


# --------------------------------------------------------------------------------------------
# One script: the same words written in Cyrillic or in any common Latin spelling.
# --------------------------------------------------------------------------------------------
#: Latin letters of the Kazakh alphabets (2018 acutes, 2021) and of Russian transliteration
#: as plain letters: i-like letters and y are one letter, q is k, x is ks, w is v.
_LATIN_PLAIN = {
    "ä": "a", "á": "a", "ğ": "g", "ǵ": "g", "ñ": "n", "ń": "n", "ö": "o", "ó": "o", "ū": "u",
    "ü": "u", "ú": "u", "ý": "u", "ş": "sh", "ș": "sh", "ç": "ch", "ı": "i", "í": "i", "ï": "i",
    "y": "i", "q": "k", "x": "ks", "w": "v", "é": "e", "è": "e",
}  # fmt: skip
#: Kazakh and Russian Cyrillic: the 2021 Kazakh alphabet made plain as above, with ё and э
#: as e (Russian writers use е for ё), and the letters Latin spells with two as the one
#: letter the digraphs below become (so that с+х, "sh", is not taken for ш).
_PLAIN_TABLE = str.maketrans(_LATIN_PLAIN)
_CYR_PLAIN: dict[str, str] = {c: lat.translate(_PLAIN_TABLE) for c, lat in KK_LATIN_2021.items()}
_CYR_PLAIN.update(
    {"ё": "e", "э": "e", "ш": "w", "щ": "w", "ч": "c", "ц": "c", "ж": "j", "х": "k", "һ": "k"}
)  # fmt: skip
#: Punctuation and spaces, as a space: most text needs no regular expression to lose them.
_PUNCT: dict[str, str] = dict.fromkeys(
    "!\"#$%&()*+,-./:;<=>?@[\\]^_{|}~'`«»“”„‘’‚‹›—–―…·•¡¿№§©®™°\u00a0\u2009\u200b\u202f\t\n\r",
    " ",
)
_ONE_SCRIPT = str.maketrans(_PUNCT | _LATIN_PLAIN | _CYR_PLAIN)
_NON_WORD = re.compile(r"[\W_]+")
#: Spellings of one Cyrillic letter in different transliterations, to one letter (longest
#: first): щ and ш as w, ж as j, ч and ц as c, ғ as g, ң as n; then х (h, kh) as k, as
#: Kazakh writes қ and Russian transliteration х in the same word (Қазақстан, Kazakhstan).
_DIGRAPHS_H = (("shch", "w"), ("sch", "w"), ("sh", "w"), ("zh", "j"), ("ch", "c"),
               ("kh", "k"), ("gh", "g"), ("h", "k"))  # fmt: skip
_DIGRAPHS = (("ts", "c"), ("tz", "c"), ("ng", "n"))
#: The 2017 Kazakh alphabet wrote ш, ч and у as s', c' and y'; its other apostrophes
#: (a', o', ...) and those of transliterated ь and ъ only mark a letter.
_APOSTROPHE = re.compile(r"[^\W\d_]['’ʼ`]")
_APOSTROPHE_LETTER = {"s": "sh", "c": "ch", "y": "u", "S": "Sh", "C": "Ch", "Y": "U"}


def apostrophe_letters(text: str) -> str:
    """Drop the apostrophes that follow a letter, turning the 2017 Kazakh alphabet's s', c'
    and y' into sh, ch and u. Call it on raw text, before punctuation is removed."""
    if "'" not in text and "’" not in text and "ʼ" not in text and "`" not in text:
        return text

    def letter(m: re.Match[str]) -> str:
        before = m.group(0)[0]
        return _APOSTROPHE_LETTER.get(before, before)

    return _APOSTROPHE.sub(letter, text)


def one_script(text: str) -> str:
    """Return text lower-case, without punctuation, in one plain Latin spelling, so that the
    same words written in Kazakh or Russian Cyrillic, in any Kazakh Latin alphabet (2017,
    2018, 2021) or in informal or standard Russian transliteration give the same string.

    Lossy on purpose (a comparison key, never shown): Kazakh letters fold onto their plain
    look-alikes, i-like letters and y become one, q becomes k, x becomes ks, the spellings of
    ш, ж, щ, ч, ц, х, ғ, ң agree (х and қ both as k). Other scripts are kept, without their
    combining marks. Built of translations and replacements: a few microseconds a post."""
    text = apostrophe_letters(text).lower().translate(_ONE_SCRIPT)
    if not text.isascii():
        # Emoji, other scripts, rarer punctuation and accents.
        if not unicodedata.is_normalized("NFKD", text):
            text = unicodedata.normalize("NFKD", text)
        text = _NON_WORD.sub(" ", "".join(c for c in text if not unicodedata.combining(c)))
    if "h" in text:  # never after Cyrillic, which has its own letters for these
        for a, b in _DIGRAPHS_H:
            text = text.replace(a, b)
    for a, b in _DIGRAPHS:
        text = text.replace(a, b)
    text = " ".join(text.split())
    while "ii" in text:
        text = text.replace("ii", "i")
    return text
