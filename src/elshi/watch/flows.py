"""Watch-list side effects: the demo's watch lists."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal
from elshi.watch import service
from elshi.watch.models import Watch

DEMO_WATCHES = (
    (
        "Kazakhstan–China relations",
        "China | Қытай | Китай | 中国 | country:CN\nBeijing | Пекин | Бейжің | 北京 | city:beijing",
    ),
    ("Consular services", "consular | консулдық | консульский\nregistration | есепке | учёт"),
    ("Border rumours", "border | шекара | граница\nrumours | слухи | қауесет"),
)


def seed_demo_watches(*, db: Session, mission_id: int) -> list[Watch]:
    """Create the demo's watch lists in a mission once."""
    if db.scalar(select(Watch.id).where(Watch.mission_id == mission_id)) is not None:
        return []
    return [
        service.save_watch(
            db=db, principal=Principal.system("demo"), mission_id=mission_id, name=name, terms=terms
        )
        for name, terms in DEMO_WATCHES
    ]
