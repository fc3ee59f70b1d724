"""The demo's actor registry: a small imported list (the ministry's own accounts and a state
news agency on every demo platform) and one assessment, so the actors page has types with
their reasons on a fresh install."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import select

from elshi.accounts.service import Principal
from elshi.db import Database

#: The name of the demo's imported list (a second run finds it and imports nothing).
DEMO_LIST = "Demo: state media and official accounts (MFA list)"
DEMO_LIST_FILE = "demo-state-accounts.csv"
#: Handle, type, display name and note of the demo accounts the list names.
DEMO_ACCOUNTS = (
    ("mfa_kz", "diplomat", "MFA Kazakhstan", "the ministry's own account"),
    ("kazembassy_de", "diplomat", "Embassy of Kazakhstan in Germany", "the embassy's account"),
    ("kazinform", "state_media", "Kazinform", "state news agency"),
)


def demo_list_csv() -> bytes:
    """The demo list as a CSV file: each demo account on each platform of the demo corpus."""
    from elshi.connectors.demo import PLATFORMS

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["platform", "handle", "type", "country", "name", "note"])
    for handle, kind, name, note in DEMO_ACCOUNTS:
        for platform in PLATFORMS:
            writer.writerow([platform, handle, kind, "KZ", name, note])
    return out.getvalue().encode("utf-8")


def seed_actors(db: Database) -> dict[str, Any]:
    """Import the demo list once, then assess every account (types by rule and signals)."""
    from elshi.actors import service
    from elshi.actors.models import ActorList

    with db.session() as s:
        if s.scalar(select(ActorList.id).where(ActorList.name == DEMO_LIST)) is None:
            service.import_list(
                s,
                principal=Principal.system("demo"),
                data=demo_list_csv(),
                filename=DEMO_LIST_FILE,
                name=DEMO_LIST,
            )
            s.commit()
        return service.assess(s).as_dict()
