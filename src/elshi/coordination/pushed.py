"""What a group pushed beyond its texts, links and hashtags: the narratives its co-acting
posts belong to (each post's `narratives` annotation, a merged narrative counted as the one
it was merged into)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Connection, Table, inspect, select

from elshi.listen.models import Annotation

ANNOTATION = cast(Table, Annotation.__table__)
#: Ids per IN list.
_IDS = 900


def narratives(conn: Connection, post_ids: Iterable[int], n: int = 5) -> list[list[Any]]:
    """Return the n narratives most of these posts belong to, as [id, title, posts], most
    posts first (ties: the lower id); [] when narratives are not stored."""
    from elshi.nlp.models import NarrativeRow
    from elshi.nlp.service import SLUG

    ids = sorted(set(post_ids))
    if not ids or not inspect(conn).has_table("narrative"):
        return []
    counts: Counter[int] = Counter()
    for a in range(0, len(ids), _IDS):
        for (label,) in conn.execute(
            select(ANNOTATION.c.label).where(
                ANNOTATION.c.enricher == SLUG,
                ANNOTATION.c.post_id.in_(ids[a : a + _IDS]),
                ANNOTATION.c.label.is_not(None),
            )
        ):
            if label.isdigit():
                counts[int(label)] += 1
    if not counts:
        return []
    table = cast(Table, NarrativeRow.__table__)
    rows = {
        r.id: r
        for r in conn.execute(
            select(table.c.id, table.c.terms, table.c.merged_into).where(
                table.c.id.in_(sorted(counts))
            )
        )
    }
    merged: Counter[int] = Counter()
    for nid, k in counts.items():
        row = rows.get(nid)
        merged[(row.merged_into or row.id) if row is not None else nid] += k
    heads = {
        r.id: list(r.terms or [])
        for r in conn.execute(
            select(table.c.id, table.c.terms).where(table.c.id.in_(sorted(merged)))
        )
    }
    best = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [[nid, ", ".join(heads.get(nid, [])[:4]) or f"#{nid}", k] for nid, k in best]
