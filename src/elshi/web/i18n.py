"""Interface languages (kk, ru, en): catalogs read from .po files, language choice, extraction.

`python -m elshi.web.i18n update` extracts messages from the templates and Python sources and
merges them into locale/<lang>/LC_MESSAGES/elshi.po; `check` fails when a message lacks a
translation.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.support import Translations

from elshi import __version__
from elshi.errors import N_ as N_  # one definition; modules import it from either place

LANGUAGES: tuple[str, ...] = ("kk", "ru", "en")
LANGUAGE_NAMES = {"kk": "Қазақша", "ru": "Русский", "en": "English"}
DOMAIN = "elshi"
LOCALE_DIR = Path(__file__).parent / "locale"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
COOKIE = "elshi_lang"

_METHODS = [
    ("**/web/templates/**.html", "jinja2.ext:babel_extract"),
    ("**.py", "python"),
]
_OPTIONS = {"**/web/templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}
_KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "pgettext": ((1, "c"), 2),
    "N_": None,
}


def po_path(lang: str) -> Path:
    """Return the catalog file of a language."""
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(lang: str) -> Catalog:
    """Read a language's .po catalog."""
    with po_path(lang).open("rb") as fh:
        return read_po(fh, locale=lang, domain=DOMAIN)


@cache
def translations(lang: str) -> Translations:
    """Return gettext translations for a language, compiled in memory from its .po file."""
    if lang not in LANGUAGES or not po_path(lang).is_file():
        return Translations()
    buf = io.BytesIO()
    write_mo(buf, read_catalog(lang), use_fuzzy=False)
    buf.seek(0)
    return Translations(buf, domain=DOMAIN)


def gettext(lang: str, message: str) -> str:
    """Translate one message into a language."""
    return translations(lang).gettext(message)


def parse_accept_language(header: str | None) -> list[str]:
    """Return the primary language codes of an Accept-Language header, best first."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        code, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        code = code.strip().lower().split("-")[0]
        if code and code != "*" and quality > 0:
            weighted.append((-quality, i, code))
    return [code for _, _, code in sorted(weighted)]


def pick_language(
    *, query: str | None, cookie: str | None, accept: str | None, default: str
) -> str:
    """Choose the interface language: ?lang=, then the cookie, then the browser, then default."""
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return str(candidate)
    for code in parse_accept_language(accept):
        if code in LANGUAGES:
            return code
    return default


def language_name(code: str, in_lang: str) -> str:
    """Return a language's name in the interface language (e.g. kk in ru: казахский)."""
    try:
        name = Locale.parse(code).get_display_name(in_lang)
    except (ValueError, UnknownLocaleError):
        return code
    return name or code


# ---------------------------------------------------------------------------- maintenance


def extract() -> Catalog:
    """Collect translatable messages from elshi's templates and Python sources."""
    catalog = Catalog(domain=DOMAIN, project="elshi", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        PACKAGE_DIR,
        _METHODS,
        _OPTIONS,
        keywords=_KEYWORDS,
        comment_tags=("TRANSLATORS:",),
        strip_comment_tags=True,
    ):
        catalog.add(
            message, None, [(f"elshi/{filename}", lineno)], auto_comments=comments, context=context
        )
    return catalog


def update() -> dict[str, int]:
    """Merge extracted messages into every catalog; return how many lack a translation."""
    template = extract()
    missing: dict[str, int] = {}
    for lang in LANGUAGES:
        path = po_path(lang)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file():
            catalog = read_catalog(lang)
        else:
            catalog = Catalog(locale=lang, domain=DOMAIN, project="elshi", charset="utf-8")
        catalog.update(template, no_fuzzy_matching=True, update_creation_date=False)
        _tidy_header(catalog, lang)
        buf = io.BytesIO()
        write_po(buf, catalog, ignore_obsolete=True, width=100, sort_output=True)
        path.write_bytes(buf.getvalue())
        missing[lang] = len(untranslated(catalog))
    translations.cache_clear()
    return missing


def _tidy_header(catalog: Catalog, lang: str) -> None:
    catalog.project = "elshi"
    catalog.version = __version__
    catalog.fuzzy = False
    catalog.msgid_bugs_address = ""
    catalog.last_translator = "elshi contributors"
    catalog.language_team = f"{Locale.parse(lang).get_display_name('en')} <{lang}>"
    catalog.header_comment = (
        f"# {Locale.parse(lang).get_display_name('en')} messages of elshi's web interface.\n"
        "# Fill in msgstr; `make i18n` merges new messages from templates and Python code."
    )


def untranslated(catalog: Catalog) -> list[str]:
    """Return the message ids without a translation (or marked fuzzy)."""
    out = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(strings):
            out.append(str(message.id))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run `update` (extract and merge) or `check` (fail on missing translations)."""
    parser = argparse.ArgumentParser(prog="python -m elshi.web.i18n", description=__doc__)
    parser.add_argument("command", choices=["update", "check"])
    args = parser.parse_args(argv)
    if args.command == "update":
        for lang, count in update().items():
            print(f"{po_path(lang).relative_to(PACKAGE_DIR.parent)}: {count} untranslated")
        return 0
    bad = 0
    for lang in LANGUAGES:
        for msgid in untranslated(read_catalog(lang)):
            print(f"{lang}: no translation for {msgid!r}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
