"""A group keeps its id from one drawing to the next.

Each update draws the groups again from the whole network. A new group that holds more than
half of the accounts of a group of the last drawing continues it and keeps its id (of
several such, the one sharing the most accounts); any other group is new and gets an id
above every id given before (`coordination_state.last_group_id`), so an id in an alert, an
e-mail or a bookmark never comes to name another group. A group that grows keeps its id, and
alert rules compare its accounts with those of the last update (`elshi.alerts`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Connection, Table, func, select

from elshi.coordination.models import CoGroupMember, CoordinationState

MEMBER = cast(Table, CoGroupMember.__table__)
STATE = cast(Table, CoordinationState.__table__)


def assign_ids(
    old: dict[int, set[int]], new: Sequence[Sequence[int]], high: int
) -> tuple[list[int], int]:
    """Return an id for each new group (its members) and the highest id given so far.

    Matches go by accounts shared, most first (ties: the lower old id, the earlier new
    group); each old id goes to one new group at most."""
    owner = {a: gid for gid, members in old.items() for a in members}
    shared: dict[tuple[int, int], int] = {}
    for i, members in enumerate(new):
        for a in members:
            gid = owner.get(a)
            if gid is not None:
                shared[(i, gid)] = shared.get((i, gid), 0) + 1
    ids: list[int | None] = [None] * len(new)
    taken: set[int] = set()
    for (i, gid), n in sorted(shared.items(), key=lambda kv: (-kv[1], kv[0][1], kv[0][0])):
        if ids[i] is None and gid not in taken and 2 * n > len(old[gid]):
            ids[i] = gid
            taken.add(gid)
    high = max([high, *old])
    out = []
    for gid in ids:
        if gid is None:
            high += 1
            gid = high
        out.append(gid)
    return out, high


def carry_ids(conn: Connection, new: Sequence[Sequence[int]]) -> tuple[list[int], int]:
    """Return the ids of the newly drawn groups (their members), read against the groups
    stored now, and the highest id given (to keep with `keep_high`)."""
    old: dict[int, set[int]] = {}
    for gid, aid in conn.execute(select(MEMBER.c.group_id, MEMBER.c.author_id)):
        old.setdefault(int(gid), set()).add(int(aid))
    high = int(conn.execute(select(func.max(STATE.c.last_group_id))).scalar() or 0)
    return assign_ids(old, new, high)


def keep_high(conn: Connection, high: int) -> None:
    """Remember the highest group id given (no state row yet: the stored groups say it).

    On PostgreSQL the table's id sequence is moved there too, so that a row added without
    an id never takes one given here."""
    conn.execute(STATE.update().where(STATE.c.id == 1).values(last_group_id=high))
    if conn.dialect.name == "postgresql" and high > 0:
        conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('co_group', 'id'), %s)", (high,))
