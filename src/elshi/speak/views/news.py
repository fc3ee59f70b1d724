"""Speak's public pages: a mission's news page, its feeds (RSS, Atom, JSON Feed), published
images, and the newsletter's sign-up, confirmation and unsubscribe links."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Annotated, Any
from xml.sax.saxutils import escape

from fastapi import Form, HTTPException, Request
from fastapi.responses import Response

from elshi.missions.models import Mission
from elshi.speak import flows, service
from elshi.speak.media import absolute
from elshi.speak.models import STATEMENT_LANGUAGES, Publication
from elshi.speak.views.common import (
    FORM_EXPIRED,
    _ctx,
    _error_page,
    _gettext,
    _image_response,
    public,
)
from elshi.web.actions import SentForm
from elshi.web.deps import DbSession
from elshi.web.i18n import LANGUAGES, N_
from elshi.web.templating import render, settings_of, translate


def _news_lang(lang: str, request: Request | None = None) -> str:
    """Check the page's language; its words around the news are in it too (unless ?lang=)."""
    if lang not in STATEMENT_LANGUAGES:
        raise HTTPException(404, "no such language")
    if request is not None and lang in LANGUAGES and "lang" not in request.query_params:
        request.state.lang = lang
    return lang


@public.get("/news/{mission_slug}/{lang}")
def news(request: Request, mission_slug: str, lang: str, db: DbSession) -> Response:
    """The mission's public news page in one language."""
    mission, items = service.news_items(
        db=db, mission_slug=mission_slug, lang=_news_lang(lang, request)
    )
    if mission is None:
        return _error_page(request, N_("There is no such page."), 404)
    return render(
        request,
        "news.html",
        {"mission": mission, "items": items, "news_lang": lang, "note": None},
    )


@public.get("/news/{mission_slug}/{lang}/{item}")
def news_item(request: Request, mission_slug: str, lang: str, item: str, db: DbSession) -> Response:
    """One news item, or a feed (rss.xml, atom.xml, feed.json)."""
    mission, items = service.news_items(
        db=db, mission_slug=mission_slug, lang=_news_lang(lang, request)
    )
    if mission is None:
        return _error_page(request, N_("There is no such page."), 404)
    base = settings_of(request).base_url
    page = f"{base}/news/{mission.slug}/{lang}"
    if item == "rss.xml":
        return Response(_rss(mission, lang, page, items), media_type="application/rss+xml")
    if item == "atom.xml":
        return Response(_atom(mission, lang, page, items), media_type="application/atom+xml")
    if item == "feed.json":
        return Response(
            json.dumps(_json_feed(mission, lang, page, items), ensure_ascii=False),
            media_type="application/feed+json",
        )
    found = next(((p, v) for p, v in items if str(p.id) == item), None)
    if found is None:
        return _error_page(request, N_("There is no such page."), 404)
    service.count_news_view(db=db, publication_id=found[0].id)
    return render(
        request,
        "news.html",
        {"mission": mission, "items": [found], "news_lang": lang, "single": True, "note": None},
    )


def _title(pub: Publication, version: Any) -> str:
    return str(version.headline or pub.text.split("\n", 1)[0][:100])


def _base(page: str) -> str:
    return page.split("/news/", 1)[0]


def _rss(mission: Mission, lang: str, page: str, items: list[Any]) -> str:
    base = _base(page)
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>',
        f"<title>{escape(mission.name)}</title><link>{escape(page)}</link>",
        f"<description>{escape(mission.name)}</description><language>{lang}</language>",
        f'<atom:link href="{escape(page)}/rss.xml" rel="self" type="application/rss+xml"/>',
    ]
    for p, v in items:
        link = f"{page}/{p.id}"
        out.append(
            f"<item><title>{escape(_title(p, v))}</title><link>{escape(link)}</link>"
            f'<guid isPermaLink="true">{escape(link)}</guid>'
            f"<pubDate>{format_datetime(p.sent_at)}</pubDate>"
            f"<description>{escape(p.text)}</description>"
            + "".join(
                f'<enclosure url="{escape(absolute(base, m["url"]))}" '
                f'length="{int(m.get("size") or 0)}" '
                f'type="{escape(m.get("content_type") or "application/octet-stream")}"/>'
                for m in (v.media or [])[:1]
            )
            + "</item>"
        )
    out.append("</channel></rss>")
    return "\n".join(out)


def _atom(mission: Mission, lang: str, page: str, items: list[Any]) -> str:
    updated = items[0][0].sent_at if items else datetime(2000, 1, 1, tzinfo=UTC)
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{lang}">',
        f"<title>{escape(mission.name)}</title><id>{escape(page)}</id>",
        f'<link rel="alternate" href="{escape(page)}"/>',
        f'<link rel="self" href="{escape(page)}/atom.xml"/>',
        f"<updated>{updated.isoformat()}</updated>",
        f"<author><name>{escape(mission.name)}</name></author>",
    ]
    for p, v in items:
        link = f"{page}/{p.id}"
        out.append(
            f"<entry><title>{escape(_title(p, v))}</title><id>{escape(link)}</id>"
            f'<link rel="alternate" href="{escape(link)}"/>'
            f"<updated>{p.sent_at.isoformat()}</updated>"
            f"<published>{p.sent_at.isoformat()}</published>"
            + "".join(
                f'<link rel="enclosure" href="{escape(absolute(_base(page), m["url"]))}" '
                f'type="{escape(m.get("content_type") or "application/octet-stream")}"/>'
                for m in v.media or []
                if m.get("key")
            )
            + f'<content type="text">{escape(p.text)}</content></entry>'
        )
    out.append("</feed>")
    return "\n".join(out)


def _json_feed(mission: Mission, lang: str, page: str, items: list[Any]) -> dict[str, Any]:
    return {
        "version": "https://jsonfeed.org/version/1.1",
        "title": mission.name,
        "home_page_url": page,
        "feed_url": f"{page}/feed.json",
        "language": lang,
        "items": [
            {
                "id": f"{page}/{p.id}",
                "url": f"{page}/{p.id}",
                "title": _title(p, v),
                "content_text": p.text,
                "date_published": p.sent_at.isoformat(),
                "language": lang,
                **({"image": absolute(_base(page), v.media[0]["url"])} if v.media else {}),
            }
            for p, v in items
        ],
    }


@public.post("/news/{mission_slug}/{lang}")
def news_subscribe(
    act: SentForm, mission_slug: str, lang: str, email: Annotated[str, Form(max_length=1000)] = ""
) -> Response:
    """Sign up for the newsletter: a confirmation link is e-mailed (double opt-in)."""
    request = act.request
    mission, items = service.news_items(
        db=act.db, mission_slug=mission_slug, lang=_news_lang(lang, request)
    )
    if mission is None:
        return _error_page(request, N_("There is no such page."), 404)
    context: dict[str, Any] = {"mission": mission, "items": items, "news_lang": lang}

    def change() -> bool:
        act.db.commit()  # the flow stores the subscriber in its own session
        ctx = _ctx(request)
        try:
            return flows.request_subscription(
                request.app.state.db, mission_slug=mission_slug, email=email, lang=lang, ctx=ctx
            )
        finally:
            ctx.close()

    def page(error: str | None, status: int) -> Response:
        return render(
            request, "news.html", {**context, "error": error, "note": None}, status=status
        )

    def done(sent: bool) -> Response:
        note = (
            N_("Check your e-mail: open the link we sent to confirm the subscription.")
            if sent
            else N_("This mission has no newsletter.")
        )
        return render(request, "news.html", {**context, "note": note})

    return act.handle(
        change,
        expired=lambda: page(translate(request, FORM_EXPIRED), 400),
        done=done,
        refused=[
            (service.SpeakError, lambda exc: page(exc.translated(_gettext(request)), 400)),
            (
                Exception,
                lambda _: page(
                    translate(
                        request,
                        N_("The confirmation e-mail could not be sent. Please try again later."),
                    ),
                    503,
                ),
            ),
        ],
    )


@public.get("/news-confirm/{token}")
def news_confirm(request: Request, token: str, db: DbSession) -> Response:
    """Confirm a newsletter subscription from the e-mailed link."""
    sub = service.confirm_subscription(db=db, token=token[:200])
    if sub is None:
        return _error_page(request, N_("This confirmation link is not valid."), 404)
    return render(request, "news_message.html", {"message": N_("You are subscribed. Thank you.")})


@public.get("/news-unsubscribe/{token}")
def news_unsubscribe(request: Request, token: str, db: DbSession) -> Response:
    """End a newsletter subscription from the link in each e-mail."""
    sub = service.unsubscribe(db=db, settings=settings_of(request), token=token[:500])
    if sub is None:
        return _error_page(request, N_("This link is not valid."), 404)
    return render(
        request, "news_message.html", {"message": N_("You will receive no more e-mails.")}
    )


@public.get("/news-media/{key}")
def public_image(request: Request, key: str, db: DbSession) -> Response:
    """An image of a statement that has gone out on a channel; nothing else is public."""
    response = _image_response(request, service.image_published(db=db, key=key), key)
    if response.status_code == 200:
        response.headers["Cache-Control"] = "public, max-age=86400"
    return response
