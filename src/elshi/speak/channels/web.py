"""The mission's own public news page, with RSS, Atom and JSON Feed, served by elshi."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy import select

from elshi.missions.models import Mission
from elshi.plugins import hookimpl
from elshi.speak.channels.base import (
    Channel,
    ChannelConfig,
    ChannelContext,
    Metrics,
    Outgoing,
    Sent,
)


class WebConfig(ChannelConfig):
    """The news page."""


class WebSecrets(BaseModel):
    """The news page needs no credentials."""


class WebChannel(Channel):
    """The mission's news page at /news/<mission>/<lang>, with /rss.xml, /atom.xml and
    /feed.json beside it. Publishing marks the item visible; views are counted by elshi."""

    slug = "web"
    title = "Mission news page with RSS/Atom/JSON feeds"
    Config = WebConfig
    Secrets = WebSecrets
    retry_safe = True
    can_edit = True
    can_delete = True

    subject_fallback = "first-line"
    images = "shown under the text, served by elshi, and in the RSS, Atom and JSON feeds."

    def publish(
        self, ctx: ChannelContext, config: WebConfig, secrets: WebSecrets, post: Outgoing
    ) -> Sent:
        """Make the item visible on the news page and in the feeds."""
        assert ctx.db is not None
        with ctx.db.session() as s:
            slug = s.scalar(select(Mission.slug).where(Mission.id == post.mission_id))
        url = f"{ctx.settings.base_url}/news/{slug}/{post.lang}/{post.publication_id}"
        return Sent(external_id=str(post.publication_id), url=url)

    def edit(
        self, ctx: ChannelContext, config: Any, secrets: Any, external_id: str, text: str
    ) -> None:
        """The page shows the publication's text, which the edit flow has already replaced."""

    def delete(self, ctx: ChannelContext, config: Any, secrets: Any, external_id: str) -> None:
        """A deleted publication is left out of the page and the feeds."""

    def metrics(
        self, ctx: ChannelContext, config: Any, secrets: Any, sent: Sent, publication_id: int
    ) -> Metrics:
        """Views of the item's own page, counted by elshi."""
        from elshi.speak.models import Publication

        assert ctx.db is not None
        with ctx.db.session() as s:
            views = s.scalar(
                select(Publication.local_views).where(Publication.id == publication_id)
            )
        return Metrics(views=views or 0, raw={"local_views": views or 0})


@hookimpl
def elshi_channels() -> list[type[Channel]]:
    """Register the news page channel."""
    return [WebChannel]
