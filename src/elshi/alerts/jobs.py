"""Alert tasks: check time-based rules and retry deliveries every minute."""

from __future__ import annotations

from typing import Any

from elshi.alerts.flows import deliver_due, evaluate_periodic
from elshi.jobs import crontab, periodic, runtime


@periodic(crontab(minute="*"))
def check_time_rules() -> dict[str, Any]:
    """Check silent sources and growing narratives, then send what is due (retries too)."""
    rt = runtime()
    fired = evaluate_periodic(rt.db, settings=rt.settings)
    return {"fired": fired} | deliver_due(rt.db, settings=rt.settings)
