"""An alert in the reader's language: its one-line summary and why it fired, from its numbers.

The stored `summary` is English (for e-mail subjects, webhooks and logs); pages rebuild the line
from `why` in the language of whoever reads it, with the plural forms of that language, and
fall back to the stored line for an alert whose numbers are not there (older rows, plugins).
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from babel.dates import format_datetime
from babel.numbers import format_decimal, format_percent

from elshi.alerts.models import Alert
from elshi.errors import N_
from elshi.web import i18n

#: What each number of `why` is, in words (keys not listed are not shown).
WHY_LABELS: dict[str, str] = {
    "window_start": N_("Window from"),
    "window_end": N_("Window until"),
    "current": N_("Posts in the window"),
    "expected": N_("Expected posts"),
    "scale": N_("Usual spread"),
    "z": N_("Deviation (z-score)"),
    "threshold": N_("Threshold (z-score)"),
    "seasonal": N_("Compared with the same weekday"),
    "baseline": N_("Posts in earlier windows"),
    "posts": N_("Posts"),
    "against": N_("Posts against the topic"),
    "share": N_("Share against the topic"),
    "baseline_posts": N_("Posts before"),
    "baseline_against": N_("Posts against the topic before"),
    "baseline_share": N_("Share against the topic before"),
    "min_delta": N_("Smallest rise that alerts"),
    "terms": N_("Terms"),
    "found": N_("Words found (posts)"),
    "source": N_("Source"),
    "last_post_at": N_("Last post"),
    "hours_silent": N_("Hours without posts"),
    "silent_hours": N_("Alert after (hours)"),
    "posts_in_week_before": N_("Posts in the week before"),
    "last_error": N_("Last error"),
    "title": N_("Narrative"),
    "before": N_("Posts before"),
    "now": N_("Posts now"),
    "group_id": N_("Coordinated group"),
    "accounts": N_("Accounts in the group"),
    "accounts_before": N_("Accounts at the last update"),
    "min_size": N_("Fewest accounts"),
    "growth_percent": N_("Growth that alerts (percent)"),
    "growth_accounts": N_("New accounts that alert"),
    "handles": N_("Accounts"),
    "platforms": N_("Platforms"),
    "languages": N_("Languages"),
    "first_at": N_("First co-action"),
    "last_at": N_("Latest co-action"),
}
_SHARES = {"share", "baseline_share", "min_delta"}


def _num(value: Any, lang: str) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    return str(format_decimal(value, locale=lang))


def _value(key: str, value: Any, lang: str) -> str:
    t = i18n.translations(lang)
    if isinstance(value, bool):
        return str(t.gettext(N_("yes") if value else N_("no")))
    if key in _SHARES and isinstance(value, int | float):
        return str(format_percent(value, locale=lang))
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_num(v, lang)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_num(v, lang) if isinstance(v, int | float) else str(v) for v in value)
    if isinstance(value, int | float):
        return _num(value, lang)
    if isinstance(value, str) and key.endswith(("_start", "_end", "_at")):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return value
        return format_datetime(when, "yyyy-MM-dd HH:mm", locale=lang) + " UTC"
    return "—" if value in (None, "") else str(value)


def why_rows(alert: Alert, lang: str) -> list[tuple[str, str]]:
    """Return (label, value) for each number behind an alert, in the reader's language."""
    t = i18n.translations(lang)
    return [
        (str(t.gettext(WHY_LABELS[k])), _value(k, v, lang))
        for k, v in (alert.why or {}).items()
        if k in WHY_LABELS
    ]


def summary(alert: Alert, lang: str) -> str:
    """Return the alert's one-line summary in the reader's language."""
    t = i18n.translations(lang)
    w = alert.why or {}
    try:
        if alert.kind == "term":
            n = int(w["posts"])
            return str(
                t.ngettext(
                    "%(num)s new post mentions %(terms)s",
                    "%(num)s new posts mention %(terms)s",
                    n,
                )
                % {"num": _num(n, lang), "terms": ", ".join(sorted(w["found"])[:5])}
            )
        if alert.kind == "volume_spike":
            n = int(w["current"])
            start = datetime.fromisoformat(w["window_start"])
            end = datetime.fromisoformat(w["window_end"])
            return str(
                t.ngettext(
                    "%(num)s post in %(hours)s h; expected %(expected)s (z = %(z)s)",
                    "%(num)s posts in %(hours)s h; expected %(expected)s (z = %(z)s)",
                    n,
                )
                % {
                    "num": _num(n, lang),
                    "hours": _num(round((end - start).total_seconds() / 3600), lang),
                    "expected": _num(round(float(w["expected"])), lang),
                    "z": _num(round(float(w["z"]), 1), lang),
                }
            )
        if alert.kind == "negative_jump":
            n = int(w["posts"])
            return str(
                t.ngettext(
                    "%(share)s of %(num)s post against the topic; before: %(base)s of %(before)s",
                    "%(share)s of %(num)s posts against the topic; before: %(base)s of %(before)s",
                    n,
                )
                % {
                    "num": _num(n, lang),
                    "share": format_percent(float(w["share"]), locale=lang),
                    "base": format_percent(float(w["baseline_share"]), locale=lang),
                    "before": _num(int(w["baseline_posts"]), lang),
                }
            )
        if alert.kind == "source_silent":
            return str(
                t.gettext("%(source)s: no posts for %(hours)s h")
                % {"source": w["source"], "hours": _num(round(float(w["hours_silent"])), lang)}
            )
        if alert.kind == "narrative_growth":
            n = int(w["now"])
            return str(
                t.ngettext(
                    "%(title)s: %(before)s → %(num)s post",
                    "%(title)s: %(before)s → %(num)s posts",
                    n,
                )
                % {
                    "title": w["title"],
                    "before": _num(int(w["before"]), lang),
                    "num": _num(n, lang),
                }
            )
        if alert.kind == "coordinated_group":
            n = int(w["accounts"])
            values = {"id": _num(int(w["group_id"]), lang), "num": _num(n, lang)}
            if "accounts_before" in w:
                values["before"] = _num(int(w["accounts_before"]), lang)
                return str(
                    t.ngettext(
                        "Coordinated group %(id)s grew from %(before)s to %(num)s account",
                        "Coordinated group %(id)s grew from %(before)s to %(num)s accounts",
                        n,
                    )
                    % values
                )
            return str(
                t.ngettext(
                    "New coordinated group %(id)s: %(num)s account",
                    "New coordinated group %(id)s: %(num)s accounts",
                    n,
                )
                % values
            )
    except (KeyError, TypeError, ValueError):
        pass
    return alert.summary


# ---------------------------------------------------------------------------- rules in words

#: Where a setting sits in a rule's sentence; split out again by `rule_sentence`.
_MARK = "\x00"


def _mark(name: str) -> str:
    return f"{_MARK}{name}{_MARK}"


def _count(value: Any, fallback: int) -> int:
    """The number that picks a plural form (the default when the value is not a number)."""
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return fallback


def _sentence_template(kind: str, params: dict[str, Any], t: Any) -> str | None:
    """A kind's sentence with a mark where each setting goes, in the plural forms its numbers
    need (a count and the hours or days each pick their own form)."""
    from elshi.alerts.service import DEFAULTS

    d = DEFAULTS.get(kind, {})

    def n(name: str) -> int:
        return _count(params.get(name), int(d.get(name) or 1))

    def hours(name: str) -> str:
        return str(t.ngettext("%(num)s hour", "%(num)s hours", n(name)) % {"num": _mark(name)})

    if kind == "volume_spike":
        text = t.ngettext(
            "Alert me when at least %(min_count)s post about %(watch)s comes within %(window)s "
            "and that is %(threshold)s times the usual spread above the usual number",
            "Alert me when at least %(min_count)s posts about %(watch)s come within %(window)s "
            "and that is %(threshold)s times the usual spread above the usual number",
            n("min_count"),
        )
        return str(text) % {
            "min_count": _mark("min_count"),
            "watch": _mark("watch"),
            "window": hours("window_hours"),
            "threshold": _mark("threshold"),
        }
    if kind == "negative_jump":
        days = t.ngettext("%(num)s day", "%(num)s days", n("baseline_days")) % {
            "num": _mark("baseline_days")
        }
        text = t.ngettext(
            "Alert me when at least %(min_count)s post about %(watch)s comes within %(window)s "
            "and the share against the topic rises by %(min_delta)s over the %(days)s before",
            "Alert me when at least %(min_count)s posts about %(watch)s come within %(window)s "
            "and the share against the topic rises by %(min_delta)s over the %(days)s before",
            n("min_count"),
        )
        return str(text) % {
            "min_count": _mark("min_count"),
            "watch": _mark("watch"),
            "window": hours("window_hours"),
            "min_delta": _mark("min_delta"),
            "days": days,
        }
    if kind == "term":
        return str(t.gettext("Alert me when a new post about %(watch)s mentions %(terms)s")) % {
            "watch": _mark("watch"),
            "terms": _mark("terms"),
        }
    if kind == "source_silent":
        return str(t.gettext("Alert me when %(source)s posts nothing for %(hours)s")) % {
            "source": _mark("source_id"),
            "hours": hours("silent_hours"),
        }
    if kind == "narrative_growth":
        text = t.ngettext(
            "Alert me when a narrative grows %(growth)s times between two checks "
            "and has at least %(min_posts)s post",
            "Alert me when a narrative grows %(growth)s times between two checks "
            "and has at least %(min_posts)s posts",
            n("min_posts"),
        )
        return str(text) % {"growth": _mark("growth"), "min_posts": _mark("min_posts")}
    if kind == "coordinated_group":
        accounts = t.ngettext("%(num)s account", "%(num)s accounts", n("growth_accounts")) % {
            "num": _mark("growth_accounts")
        }
        text = t.ngettext(
            "Alert me when a coordinated group of at least %(min_size)s account appears "
            "among this mission's posts, or a group grows by %(growth_percent)s%% "
            "or by %(accounts)s since the last update",
            "Alert me when a coordinated group of at least %(min_size)s accounts appears "
            "among this mission's posts, or a group grows by %(growth_percent)s%% "
            "or by %(accounts)s since the last update",
            n("min_size"),
        )
        return str(text) % {
            "min_size": _mark("min_size"),
            "growth_percent": _mark("growth_percent"),
            "accounts": accounts,
        }
    return None


def rule_sentence(kind: str, params: dict[str, Any], lang: str) -> list[tuple[str, str]]:
    """Return a rule as a sentence in the reader's language, in pieces: ("", words) for
    words, (setting, "") where a setting (or "watch", the watch list's name) goes.

    The rules list fills each setting with its value (`rule_words`); the rule form puts the
    setting's field there, so the form and the list read the same sentence. `params` picks
    the plural forms (the form passes what is typed, or the defaults)."""
    template = _sentence_template(kind, params or {}, i18n.translations(lang))
    if template is None:
        return []
    parts = template.split(_MARK)
    return [("", part) if i % 2 == 0 else (part, "") for i, part in enumerate(parts) if part]


#: The settings whose numbers pick a plural form in each kind's sentence.
PLURAL_SETTINGS: dict[str, tuple[str, ...]] = {
    "volume_spike": ("min_count", "window_hours"),
    "negative_jump": ("min_count", "window_hours", "baseline_days"),
    "source_silent": ("silent_hours",),
    "narrative_growth": ("min_posts",),
}

#: Plural rules look at n % 10 and n % 100 at most: the form of any whole n is the form of
#: n itself below 200, and of 100 + n % 100 above.
PLURAL_TABLE = 200


def plural_forms(lang: str) -> list[int]:
    """Return the catalog's plural form index for each n from 0 to PLURAL_TABLE - 1."""
    t = i18n.translations(lang)
    pick = getattr(t, "plural", None) or (lambda n: int(n != 1))
    return [int(pick(n)) for n in range(PLURAL_TABLE)]


def sentence_variants(kind: str, shown: dict[str, Any], lang: str) -> dict[str, Any]:
    """Return what the rule form's script needs to keep a kind's sentence in the right plural
    forms while numbers are typed: the settings that pick forms, the form of each n, and the
    sentence's words for every combination of forms ("0,1" = first setting in form 0, the
    second in form 1). Combinations whose sentence is shaped otherwise (settings in another
    order) are left out: the script then keeps the words it has."""
    names = PLURAL_SETTINGS.get(kind, ())
    if not names:
        return {}
    forms = plural_forms(lang)
    first = {form: n for n, form in reversed(list(enumerate(forms)))}
    shape = [name for name, _ in rule_sentence(kind, shown, lang)]
    variants: dict[str, list[str]] = {}
    for combo in itertools.product(sorted(first), repeat=len(names)):
        params = dict(shown) | {name: first[form] for name, form in zip(names, combo, strict=True)}
        pieces = rule_sentence(kind, params, lang)
        if [name for name, _ in pieces] != shape:
            continue
        variants[",".join(map(str, combo))] = [words for name, words in pieces if not name]
    return {"settings": list(names), "forms": forms, "variants": variants}


def setting_text(name: str, value: Any, lang: str, sources: dict[int, str]) -> str:
    """Return one setting of a rule as words: a share in percent, terms quoted, a source by
    its name."""
    if name == "source_id":
        return sources.get(_count(value, 0), "—")
    if name == "terms":
        terms = value if isinstance(value, list | tuple) else [value]
        return ", ".join(f"«{term}»" for term in terms)
    return _value(name, value, lang)


def rule_words(
    kind: str, params: dict[str, Any], lang: str, *, watch: str, sources: dict[int, str]
) -> list[tuple[bool, str]]:
    """Return a stored rule's sentence as (is a value, text) pieces, values filled in."""
    return [
        (True, watch if name == "watch" else setting_text(name, params.get(name), lang, sources))
        if name
        else (False, words)
        for name, words in rule_sentence(kind, params, lang)
    ]
