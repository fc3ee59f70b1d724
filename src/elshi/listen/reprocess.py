"""Re-run connector mappings over kept raw payloads, so a better mapping improves old posts."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from sqlalchemy import select, update

from elshi.connectors.base import MappingError, PostIn, RawRecord
from elshi.db import Database
from elshi.listen.flows import Progress
from elshi.listen.models import Post
from elshi.listen.text import content_hash, index_text, repair_post
from elshi.plugins import UnknownPlugin, get_connector

#: What a mapping sets besides the post's identity (platform, external_id): all may change.
_FIELDS = tuple(f.name for f in fields(PostIn) if f.name not in ("platform", "external_id"))


def reprocess_posts(
    db: Database,
    *,
    source_id: int | None = None,
    connector: str | None = None,
    progress: Progress | None = None,
    chunk: int = 1000,
) -> dict[str, int]:
    """Map each kept raw payload again and update the post where the result differs."""
    counts = {"checked": 0, "updated": 0, "failed": 0}
    plugins: dict[str, Any] = {}
    last_id = 0
    sqlite = db.engine.dialect.name == "sqlite"
    while True:
        with db.session() as s:
            q = (
                select(Post)
                .where(Post.id > last_id, Post.raw.is_not(None))
                .order_by(Post.id)
                .limit(chunk)
            )
            if source_id is not None:
                q = q.where(Post.source_id == source_id)
            if connector is not None:
                q = q.where(Post.connector == connector)
            posts = list(s.scalars(q))
            if not posts:
                break
            for post in posts:
                last_id = post.id
                counts["checked"] += 1
                if progress:
                    progress(1)
                try:
                    plugin = plugins.get(post.connector) or get_connector(post.connector)
                    plugins[post.connector] = plugin
                    new = plugin.to_post(
                        RawRecord(payload=post.raw, location=f"post {post.id}", kind=post.raw_kind)
                    )
                except (
                    UnknownPlugin,
                    MappingError,
                    ValueError,
                    KeyError,
                    TypeError,
                    AttributeError,
                ):
                    counts["failed"] += 1
                    continue
                if new is None or new.external_id != post.external_id:
                    counts["failed"] += 1
                    continue
                repair_post(new)
                changes = {
                    f: getattr(new, f) for f in _FIELDS if getattr(new, f) != getattr(post, f)
                }
                if not changes:
                    continue
                old_fts = (post.title, post.text, post.author_handle, post.author_name)
                s.execute(
                    update(Post)
                    .where(Post.id == post.id)
                    .values(**changes, content_hash=content_hash(new.text, new.title))
                )
                if sqlite:
                    conn = s.connection()
                    conn.exec_driver_sql(
                        "INSERT INTO post_fts(post_fts, rowid, title, body, author) "
                        "VALUES('delete', ?, ?, ?, ?)",
                        (
                            post.id,
                            index_text(old_fts[0]),
                            index_text(old_fts[1]),
                            " ".join(filter(None, old_fts[2:])),
                        ),
                    )
                    conn.exec_driver_sql(
                        "INSERT INTO post_fts(rowid, title, body, author) VALUES (?, ?, ?, ?)",
                        (
                            post.id,
                            index_text(new.title),
                            index_text(new.text),
                            " ".join(filter(None, (new.author_handle, new.author_name))),
                        ),
                    )
                counts["updated"] += 1
    return counts
