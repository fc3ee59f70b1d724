"""Import runs: started, finished, listed; a run whose process died is shown as interrupted.

A run records the host and process that run it and, while it stores batches, a heartbeat.
A run still 'running' whose process is gone (same host: no such process, or a newer one with
its number; another host: no heartbeat for RUN_LEASE) is marked interrupted when the next
run starts or when runs are listed, instead of staying 'running' forever.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from elshi.db import Database, utcnow
from elshi.listen.models import IngestRun
from elshi.listen.writer import IngestReport

log = logging.getLogger(__name__)

#: How often a run that is storing batches says it is alive.
HEARTBEAT_EVERY = timedelta(seconds=30)
#: A run on another host that has not said it is alive for this long is taken as interrupted.
RUN_LEASE = timedelta(minutes=30)

STATUSES = ("running", "ok", "failed", "interrupted")


def this_host() -> str:
    """The name runs record as the host that runs them."""
    return socket.gethostname()[:255]


def start_run(db: Database, *, connector: str, origin: str, source_id: int | None) -> int:
    """Record a new run for this process (settling runs left behind by dead ones first)."""
    settle_interrupted(db)
    now = utcnow()
    with db.session() as s:
        run = IngestRun(
            connector=connector,
            origin=origin,
            source_id=source_id,
            started_at=now,
            host=this_host(),
            pid=os.getpid(),
            heartbeat_at=now,
        )
        s.add(run)
        s.flush()
        return run.id


def finish_run(db: Database, run_id: int, report: IngestReport, status: str) -> None:
    """Record how a run ended, with its counts."""
    with db.session() as s:
        run = s.get(IngestRun, run_id)
        assert run is not None
        run.finished_at = utcnow()
        run.read = report.read
        run.stored = report.stored
        run.duplicates = report.duplicates
        run.near_duplicates = report.near_duplicates
        run.quarantined = report.quarantined
        run.status = status
        run.error = report.error


def _process_started(pid: int) -> datetime | None:
    """When process pid started (Linux /proc), or None when that cannot be told."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        ticks = int(fields[19])  # field 22 of stat: start time in clock ticks after boot
        return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), UTC)
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _alive(run: IngestRun, host: str, now: datetime) -> bool:
    if run.host == host and run.pid is not None:
        try:
            os.kill(run.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # a process of another user has that number: alive
        started = _process_started(run.pid)
        # The number may have been given to a newer process since (a slack for clock rounding).
        return started is None or started <= run.started_at + timedelta(seconds=2)
    seen = run.heartbeat_at or run.started_at
    return now - seen < RUN_LEASE


def settle_interrupted(db: Database) -> int:
    """Mark runs left 'running' by a process that is gone as interrupted; return how many."""
    host, now = this_host(), utcnow()
    with db.session() as s:
        running = list(s.scalars(select(IngestRun).where(IngestRun.status == "running")))
        dead = [run for run in running if not _alive(run, host, now)]
        for run in dead:
            where = f"process {run.pid} on {run.host}" if run.pid else "its process"
            run.status = "interrupted"
            run.finished_at = run.heartbeat_at or run.started_at
            run.error = f"interrupted: {where} stopped before the run finished"
        return len(dead)


def heartbeat(db: Database, run_id: int) -> None:
    """Say that run_id's process is alive (runs that store nothing for a while call it)."""
    with db.session() as s:
        s.execute(update(IngestRun).where(IngestRun.id == run_id).values(heartbeat_at=utcnow()))


def list_runs(db: Database, *, limit: int = 20, status: str | None = None) -> list[IngestRun]:
    """The newest runs first, with runs of dead processes shown (and marked) as interrupted.

    Listing works on a database that cannot be written (a full disk): the runs are then
    shown as interrupted without being marked.
    """
    try:
        settle_interrupted(db)
    except Exception as exc:
        log.warning("could not mark interrupted runs: %s", exc)
    host, now = this_host(), utcnow()
    with db.session() as s:
        q = select(IngestRun).order_by(IngestRun.id.desc()).limit(limit)
        if status is not None:
            q = q.where(IngestRun.status == status)
        runs = list(s.scalars(q))
        s.expunge_all()
    for run in runs:
        if run.status == "running" and not _alive(run, host, now):
            run.status = "interrupted"
    return runs
