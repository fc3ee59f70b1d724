"""Digest task: every day at ELSHI_DIGEST_HOUR (UTC), make and send each mission's digest."""

from __future__ import annotations

from typing import Any

from elshi.db import utcnow
from elshi.digest.flows import daily
from elshi.jobs import crontab, periodic, runtime


@periodic(crontab(minute="5"))
def send_daily_digests() -> list[dict[str, Any]] | None:
    """At five past the configured hour, make and send the digests not yet made."""
    rt = runtime()
    if utcnow().hour != rt.settings.digest_hour:
        return None
    return daily(rt.db, settings=rt.settings)
