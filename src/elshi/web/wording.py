"""Words for the codes the pages show: statuses, channels, answers, roles, platforms, events.

A page never shows a stored code (`in_review`, `pending`, `telegram`) as it is: templates call
`term("group", code)`, which returns the code's name in the reader's language, or the code
itself for one this table does not know (a plugin's platform, a new status), so nothing is
hidden.
"""

from __future__ import annotations

from typing import Any

from elshi.errors import N_

TERMS: dict[str, dict[str, str]] = {
    "crisis_status": {
        "open": N_("ongoing"),
        "closed": N_("closed"),
        "cancelled": N_("cancelled"),
    },
    "broadcast_status": {
        "awaiting": N_("awaiting approval"),
        "approved": N_("approved, not sent"),
        "sending": N_("sending"),
        "sent": N_("sent"),
        "cancelled": N_("cancelled"),
    },
    "delivery_status": {
        "pending": N_("waiting"),
        "sending": N_("sending"),
        "sent": N_("sent"),
        "failed": N_("failed"),
        "unknown": N_("unknown"),
        "cancelled": N_("cancelled"),
        "deleted": N_("deleted"),
    },
    "channel": {
        "email": N_("E-mail"),
        "telegram": "Telegram",
        "push": N_("Web push"),
        "sms": "SMS",
        "webhook": "Webhook",
        "web": N_("News page"),
    },
    "answer": {
        "safe": N_("safe"),
        "help": N_("needs help"),
        "left": N_("left the area"),
    },
    "presence": {
        "confirmed": N_("confirmed"),
        "estimated": N_("estimated by dates"),
        "registered": N_("registered, dates do not cover today"),
    },
    "audience": {
        "present": N_("present today by registration dates"),
        "everyone": N_("everyone registered there"),
    },
    "area": {
        "countries": N_("countries"),
        "regions": N_("regions"),
        "cities": N_("cities"),
        "polygon": N_("area on the map"),
        "circle": N_("circle on the map"),
    },
    "request_event": {
        "created": N_("request created"),
        "submitted": N_("submitted"),
        "resubmitted": N_("submitted again"),
        "claimed": N_("taken for review"),
        "asked_documents": N_("more documents asked for"),
        "approved": N_("approved"),
        "rejected": N_("rejected"),
        "booked": N_("appointment booked"),
        "moved": N_("appointment moved"),
        "cancelled": N_("appointment cancelled"),
    },
    "appointment_status": {
        "booked": N_("booked"),
        "cancelled": N_("cancelled"),
        "attended": N_("attended"),
        "no_show": N_("did not come"),
    },
    "role": {
        "admin": N_("administrator"),
        "ambassador": N_("ambassador"),
        "analyst": N_("analyst"),
        "press": N_("press officer"),
        "approver": N_("approver"),
        "consular": N_("consular officer"),
        "citizen": N_("citizen"),
    },
    "mission_kind": {
        "hq": N_("headquarters"),
        "embassy": N_("embassy"),
        "consulate": N_("consulate"),
    },
    "coaction": {
        "repost": N_("same repost"),
        "link": N_("same link"),
        "domain": N_("same website"),
        "hashtag": N_("same hashtag"),
        "hashtag_seq": N_("same hashtags in the same order"),
        "text": N_("same text"),
        "near_text": N_("nearly the same text"),
        "image": N_("same image"),
        "reply": N_("reply to the same post"),
    },
    "platform": {
        "telegram": "Telegram",
        "rss": "RSS",
        "bluesky": "Bluesky",
        "mastodon": "Mastodon",
        "twitter": "X (Twitter)",
        "vk": "VK",
        "web": N_("website"),
        "demo": N_("demo"),
    },
    "field_type": {
        "text": N_("short text"),
        "textarea": N_("long text"),
        "date": N_("date"),
        "number": N_("number"),
        "select": N_("choice from a list"),
    },
    "option": {
        # The options of the default catalogue's choice fields.
        "tourism": N_("tourism"),
        "business": N_("business"),
        "study": N_("study"),
        "family": N_("family"),
        "residence": N_("residence"),
        "no-criminal-record": N_("no criminal record"),
        "marital-status": N_("marital status"),
    },
}


def term(translate: Any, group: str, code: Any) -> str:
    """Return a code's name in the reader's language (`translate` is the page's gettext)."""
    if code is None or code == "":
        return "—"
    name = TERMS.get(group, {}).get(str(code))
    if name is None:
        return str(code)
    return str(translate(name))
