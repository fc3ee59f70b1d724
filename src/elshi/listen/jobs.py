"""Listen tasks: poll a source (the pipeline's first stage), find due sources every minute."""

from __future__ import annotations

import logging
import os
from typing import Any

from elshi.connectors.base import FetchContext
from elshi.jobs import crontab, enqueue, pass_on, periodic, runtime, task
from elshi.listen import flows, service

log = logging.getLogger(__name__)


@task()
def poll_source(source_id: int) -> dict[str, Any]:
    """Poll one source and return its ingest report."""
    rt = runtime()
    ctx = FetchContext(settings=rt.settings)
    with rt.db.session() as s:
        before = service.newest_post_id(db=s)
    try:
        report = flows.run_source(rt.db, source_id=source_id, ctx=ctx)
    except flows.SourceRefused as exc:
        # Recorded on the source (paused, with the reason); nothing to retry.
        return {"source_id": source_id, "error": str(exc), "stored": 0}
    finally:
        ctx.close()
    if report.stored:
        pass_on("ingest", before)
    return report.as_dict()


@periodic(crontab(minute="*"))
def schedule_due_sources() -> list[int]:
    """Queue a poll for every scheduled source that is due."""
    rt = runtime()
    with rt.db.session() as s:
        due = service.due_sources(db=s)
    for source_id in due:
        enqueue("poll_source", source_id)
    return due


@task()
def ping(note: str) -> dict[str, Any]:
    """Answer with the worker's process id: proves a job crossed processes."""
    return {"note": note, "pid": os.getpid()}
