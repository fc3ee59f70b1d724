"""Crisis queries and changes: the area and who is in it, broadcasts with four-eyes approval,
set-based queuing of deliveries, escalation, check-ins, and the welfare counts.

Every function takes keyword-only arguments and an explicit session (or connection).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from elshi.accounts.service import Principal, audit_by
from elshi.consulate.service import clean_text
from elshi.crisis.models import (
    Crisis,
)
from elshi.errors import Invalid, NotFound, Problem
from elshi.modules import forward_to
from elshi.web.i18n import N_

LANGUAGES = ("kk", "ru", "en")

EMPTY_AREA = N_("No one is in this area: nothing would be sent.")
NO_AREA = N_("Draw the area: countries, regions, cities, a polygon or a circle.")
BAD_POLYGON = N_("A polygon needs at least 3 points as 'latitude longitude; ...'.")
BAD_CIRCLE = N_("A circle is 'latitude longitude kilometres', e.g. '41.0 28.9 25'.")
BAD_COORD = N_("Latitude must be -90..90 and longitude -180..180.")
NO_MESSAGE = N_("Write the message in at least one language.")
SMS_TOO_LONG = N_(
    "The SMS in %(lang)s takes %(segments)s segments (%(units)s characters, %(encoding)s, "
    "with the personal link); at most %(max)s are allowed. Shorten the SMS text."
)
SAME_OFFICER = N_("A second officer must approve: you created this broadcast.")
BAD_STATE = N_("This cannot be done while the broadcast is %(status)s.")
CRISIS_CLOSED = N_("This crisis is %(status)s.")
NOT_ALLOWED = N_("Your role does not allow this in this mission.")


# ---------------------------------------------------------------------------- SMS segments

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class Segments:
    """How an SMS text is encoded and how many segments it takes."""

    encoding: str  # "GSM-7" or "UCS-2"
    units: int
    segments: int
    per_segment: int


def sms_segments(text: str) -> Segments:
    """Count SMS segments: GSM-7 160 alone / 153 joined, UCS-2 (e.g. Cyrillic) 70 / 67."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in text):
        units = sum(2 if c in _GSM7_EXTENDED else 1 for c in text)
        single, joined, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, joined, encoding = 70, 67, "UCS-2"
    if units == 0:
        return Segments(encoding, 0, 0, single)
    if units <= single:
        return Segments(encoding, units, 1, single)
    return Segments(encoding, units, math.ceil(units / joined), joined)


# ---------------------------------------------------------------------------- check-in tokens


class BadToken(ValueError):
    """A check-in link that elshi did not make (forged, cut short or altered)."""


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _token_mac(key: bytes, payload: str) -> str:
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def checkin_token(*, key: bytes, crisis_id: int, recipient_id: int) -> str:
    """Return the personal check-in token: both ids and an HMAC of them (short, for SMS).

    `key` is the check-in purpose key (`crypto.purpose_key(settings, crypto.CHECKIN)`)."""
    payload = f"{_b36(crisis_id)}-{_b36(recipient_id)}"
    return f"{payload}-{_token_mac(key, payload)}"


def read_token(*, keys: Sequence[bytes], token: str) -> tuple[int, int]:
    """Return (crisis_id, recipient_id) of a genuine token (no database read) or raise BadToken.

    `keys`: the check-in keys accepted (`crypto.verify_keys(settings, crypto.CHECKIN)`)."""
    parts = token.split("-", 2)
    if len(parts) != 3 or len(token) > 60:
        raise BadToken("malformed check-in link")
    payload = f"{parts[0]}-{parts[1]}"
    if not any(hmac.compare_digest(_token_mac(k, payload), parts[2]) for k in keys):
        raise BadToken("check-in link signature does not match")
    try:
        return int(parts[0], 36), int(parts[1], 36)
    except ValueError:
        raise BadToken("malformed check-in link") from None


def checkin_url(*, base_url: str, key: bytes, crisis_id: int, recipient_id: int) -> str:
    """Return the personal check-in link."""
    token = checkin_token(key=key, crisis_id=crisis_id, recipient_id=recipient_id)
    return f"{base_url}/c/{token}"


# ---------------------------------------------------------------------------- messages


def parse_messages(
    raw: Mapping[str, Any], *, max_segments: int, base_url: str
) -> dict[str, dict[str, str]]:
    """Return {lang: {subject, text, sms}} from form fields like `text_kk`; check SMS length."""
    out: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        text = clean_text(f"text_{lang}", raw.get(f"text_{lang}", ""), max_len=5000)
        if not text:
            continue
        message = {
            "subject": clean_text(f"subject_{lang}", raw.get(f"subject_{lang}", ""), max_len=200),
            "text": text,
            "sms": clean_text(f"sms_{lang}", raw.get(f"sms_{lang}", ""), max_len=1600),
        }
        seg = sms_segments(sms_body(message, link=_sample_link(base_url)))
        if seg.segments > max_segments:
            raise Invalid(
                Problem(
                    f"sms_{lang}",
                    SMS_TOO_LONG,
                    {
                        "lang": lang,
                        "segments": seg.segments,
                        "units": seg.units,
                        "encoding": seg.encoding,
                        "max": max_segments,
                    },
                )
            )
        out[lang] = message
    if not out:
        raise Invalid(Problem("text_kk", NO_MESSAGE))
    return out


def _sample_link(base_url: str) -> str:
    return checkin_url(base_url=base_url, key=b"x", crisis_id=99999, recipient_id=9_999_999)


def sms_body(message: Mapping[str, str], *, link: str) -> str:
    """The SMS: its own short text (else the main text) and the personal link."""
    text = (message.get("sms") or message.get("text") or "").strip()
    return f"{text}\n{link}"


# ---------------------------------------------------------------------------- access and audit


def rowcount(result: Any) -> int:
    """Return how many rows an INSERT or UPDATE touched."""
    return int(getattr(result, "rowcount", 0) or 0)


def _audit(
    db: Session,
    actor: Principal,
    action: str,
    kind: str,
    object_id: int,
    detail: dict[str, Any] | None = None,
) -> None:
    audit_by(actor, db, action, kind, object_id, **(detail or {}))


def _require(actor: Principal, permission: str, mission_id: int) -> None:
    if not actor.can(permission, mission_id):
        raise Invalid(Problem("role", NOT_ALLOWED))


def get_crisis(*, db: Session, actor: Principal, crisis_id: int, act: bool = False) -> Crisis:
    """Return a crisis the officer may see (act: may change); NotFound otherwise."""
    row = db.get(Crisis, crisis_id)
    perm = "consulate.act" if act else "consulate.read"
    if row is None or not actor.can(perm, row.mission_id):
        raise NotFound(f"crisis {crisis_id}")
    return row


# ---------------------------------------------------------------------------- the other parts
# The rest of the service lives in one module per section: area, broadcasts (with escalation),
# checkins, welfare. `service.X` finds each of their
# names here, loaded on first use so that those modules can import this one.

_PARTS = ("area", "broadcasts", "checkins", "welfare")

if TYPE_CHECKING:
    from elshi.crisis.area import *  # noqa: F403
    from elshi.crisis.broadcasts import *  # noqa: F403
    from elshi.crisis.checkins import *  # noqa: F403
    from elshi.crisis.welfare import *  # noqa: F403


__getattr__ = forward_to(__package__, __name__, _PARTS)
