"""Run enrichers over stored posts in batches and keep their annotations, one row per enricher."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from elshi.db import Database, utcnow
from elshi.listen.models import Annotation, Post
from elshi.nlp.base import AnnotationIn, Enricher, PostText
from elshi.plugins import enrichers as registered
from elshi.settings import Settings

log = logging.getLogger(__name__)
ANNOTATION = cast(Table, Annotation.__table__)
POST = cast(Table, Post.__table__)
Progress = Callable[[int], None]


def ordered(
    slugs: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    apart: bool | None = None,
) -> list[Enricher]:
    """Return enricher instances for `slugs` (default: all registered) with requirements first.

    With no slugs, `apart=False` leaves out the enrichers the queue runs as their own job and
    `apart=True` takes only those (with what they require).
    """
    available = registered()
    if slugs:
        wanted = list(slugs)
    else:
        wanted = [s for s, c in available.items() if apart is None or c.queued_apart == apart]
    out: list[Enricher] = []
    seen: set[str] = set()

    def visit(slug: str, chain: tuple[str, ...]) -> None:
        if slug in seen:
            return
        if slug in chain:
            raise ValueError(f"enrichers require each other in a loop: {' -> '.join(chain)}")
        if slug not in available:
            raise KeyError(f"no enricher {slug!r}; known: {', '.join(available)}")
        cls = available[slug]
        for dep in cls.requires:
            visit(dep, (*chain, slug))
        seen.add(slug)
        out.append(cls(settings))

    for slug in wanted:
        visit(slug, ())
    return out


def not_enriched(*, apart: bool = False) -> Any:
    """Return the condition "the last enricher of the pipeline has not seen this post" (None
    when the pipeline is empty): the catch-up and the watch lists read it the same way."""
    pipeline = ordered(apart=apart)
    if not pipeline:
        return None
    last = pipeline[-1].slug
    return ~exists().where(and_(Annotation.post_id == Post.id, Annotation.enricher == last))


def _safe_batch(enricher: Enricher, posts: list[PostText]) -> list[AnnotationIn]:
    try:
        return enricher.enrich_batch(posts)
    except Exception as exc:  # one bad post must not sink the batch
        log.warning(
            "%s failed on a batch of %d (%s); retrying one by one", enricher.slug, len(posts), exc
        )
    results: list[AnnotationIn] = []
    for post in posts:
        try:
            results.extend(enricher.enrich_batch([post]))
        except Exception as exc:  # recorded on the post, the rest go on
            results.append(
                AnnotationIn(
                    post_id=post.id, label=None, value={"error": f"{type(exc).__name__}: {exc}"}
                )
            )
    return results


def _store(
    s: Session,
    enricher: Enricher,
    todo_ids: list[int],
    results: list[AnnotationIn],
    by_id: dict[int, PostText],
) -> None:
    """Replace the enricher's annotations of the posts it ran on; fill posts' languages."""
    s.execute(
        delete(ANNOTATION).where(
            ANNOTATION.c.enricher == enricher.slug, ANNOTATION.c.post_id.in_(todo_ids)
        )
    )
    now = utcnow()
    if results:
        # One row per post (the last result wins), written as an upsert: a catch-up task and
        # a queued job may annotate the same post at once, and the second one to commit then
        # updates the row the first one wrote instead of failing on the unique key.
        rows = {
            r.post_id: {
                "post_id": r.post_id,
                "enricher": enricher.slug,
                "version": enricher.version,
                "label": r.label,
                "score": r.score,
                "value": r.value,
                "created_at": now,
            }
            for r in results
        }
        upsert = (
            sqlite_insert(ANNOTATION)
            if s.get_bind().dialect.name == "sqlite"
            else pg_insert(ANNOTATION)
        )
        s.execute(
            upsert.on_conflict_do_update(
                index_elements=["post_id", "enricher"],
                set_={
                    name: getattr(upsert.excluded, name)
                    for name in ("version", "label", "score", "value", "created_at")
                },
            ),
            list(rows.values()),
        )
    enricher.finish(s, results)
    if enricher.sets_post_lang:
        fills = [
            {"b_id": r.post_id, "b_lang": r.label}
            for r in results
            if r.label and r.label != "und" and by_id[r.post_id].lang is None
        ]
        if fills:
            s.execute(
                update(POST).where(POST.c.id == bindparam("b_id")).values(lang=bindparam("b_lang")),
                fills,
            )


def enrich_posts(
    db: Database,
    *,
    slugs: Sequence[str] | None = None,
    min_id: int | None = None,
    max_id: int | None = None,
    since: datetime | None = None,
    force: bool = False,
    batch_size: int = 500,
    progress: Progress | None = None,
    apart: bool | None = None,
) -> dict[str, Any]:
    """Annotate posts that lack a current annotation from each enricher; return counts."""
    pipeline = ordered(slugs, settings=db.settings, apart=apart)
    counts: dict[str, Any] = {"posts": 0, "annotations": 0, "errors": 0, "by_enricher": {}}
    last = (min_id - 1) if min_id else 0
    while True:
        with db.session() as s:
            q = (
                select(
                    Post.id, Post.text, Post.title, Post.lang, Post.published_at, Post.collected_at
                )
                .where(Post.id > last)
                .order_by(Post.id)
                .limit(batch_size)
            )
            if max_id is not None:
                q = q.where(Post.id <= max_id)
            if since is not None:
                q = q.where(Post.collected_at >= since)
            rows = s.execute(q).all()
            if not rows:
                break
            last = rows[-1][0]
            posts = [
                PostText(id=r[0], text=r[1] or "", title=r[2], lang=r[3], time=r[4] or r[5])
                for r in rows
            ]
            ids = [p.id for p in posts]
            current: dict[tuple[int, str], tuple[str, Any]] = {
                (a.post_id, a.enricher): (a.version, a)
                for a in s.scalars(select(Annotation).where(Annotation.post_id.in_(ids)))
            }
            by_id = {p.id: p for p in posts}
            # All results first, then all writes: on SQLite the first write takes the database's
            # one write lock until the batch commits, so writing as each enricher finishes
            # would keep other workers waiting while the later enrichers compute.
            done: list[tuple[Enricher, list[int], list[AnnotationIn]]] = []
            for enricher in pipeline:
                todo = []
                for p in posts:
                    have = current.get((p.id, enricher.slug))
                    if have is not None and not force and have[0] == enricher.version:
                        p.context[enricher.slug] = have[1].value | {"label": have[1].label}
                    else:
                        todo.append(p)
                if not todo:
                    continue
                enricher.prepare(todo)
                enricher.begin(s)
                results = _safe_batch(enricher, todo)
                for r in results:
                    post = by_id.get(r.post_id)
                    if post is not None:
                        post.context[enricher.slug] = r.value | {"label": r.label}
                    if "error" in r.value:
                        counts["errors"] += 1
                done.append((enricher, [p.id for p in todo], results))
            for enricher, todo_ids, results in done:
                _store(s, enricher, todo_ids, results, by_id)
                counts["annotations"] += len(results)
                counts["by_enricher"][enricher.slug] = counts["by_enricher"].get(
                    enricher.slug, 0
                ) + len(results)
            counts["posts"] += len(posts)
        if progress is not None:
            progress(len(posts))
    return counts
