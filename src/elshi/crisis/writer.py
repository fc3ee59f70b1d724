"""Group commit for check-ins: requests hand their one INSERT to a writer thread that runs a
batch in one transaction; each request is answered only after its batch committed, so an
accepted answer is never lost, and a burst costs one commit per batch instead of per answer."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from datetime import UTC
from typing import Any

from elshi.crisis.models import CheckIn
from elshi.crisis.service import CHECKIN_COLUMNS, checkin_insert
from elshi.db import Database

log = logging.getLogger(__name__)

MAX_BATCH = 500


class CheckinWriter:
    """One writer thread per web process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.queue: queue.Queue[tuple[Any, asyncio.AbstractEventLoop, asyncio.Future[int]]] = (
            queue.Queue()
        )
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        dialect = db.engine.dialect
        compiled = checkin_insert(dialect.name).compile(dialect=dialect)
        #: The INSERT compiled once; run through the driver without SQLAlchemy per answer.
        self.sql = compiled.string
        self.positional = compiled.positiontup
        self.naive_times = dialect.name == "sqlite"
        self.dialect = dialect

    def _ensure(self) -> None:
        if self.thread is None:
            with self.lock:
                if self.thread is None:
                    self.thread = threading.Thread(
                        target=self._run, name="crisis-checkin-writer", daemon=True
                    )
                    self.thread.start()

    async def write(self, values: dict[str, Any]) -> int:
        """Store one check-in (service.checkin_values) in the next batch; return 1 once
        committed, or 0 when the INSERT's conditions kept it out."""
        self._ensure()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self.queue.put((self._params(values), loop, future))
        return await future

    def _params(self, values: dict[str, Any]) -> Any:
        at = values["at"].astimezone(UTC)
        values = values | {
            "at": at.replace(tzinfo=None) if self.naive_times else at,
            # The driver gets the note as stored: sealed (the INSERT is run without SQLAlchemy).
            "note": CheckIn.note.type.process_bind_param(values["note"], self.dialect),
        }
        if self.positional:
            return tuple(values[name] for name in self.positional)
        return {name: values[name] for name in CHECKIN_COLUMNS}

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                counts = []
                # A person waits for this answer: take the write lock between an import's
                # batches rather than behind them (see Database.writing).
                with self.db.writing(urgent=True) as conn:
                    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                    try:
                        for params, _, _ in batch:
                            cursor.execute(self.sql, params)
                            counts.append(max(0, int(cursor.rowcount or 0)))
                    finally:
                        cursor.close()
            except Exception as exc:  # the database refused: no answer of the batch is kept
                log.error("check-in batch of %d not stored: %s", len(batch), type(exc).__name__)
                for _, loop, future in batch:
                    loop.call_soon_threadsafe(_fail, future, exc)
                continue
            for (_, loop, future), n in zip(batch, counts, strict=True):
                loop.call_soon_threadsafe(_done, future, n)


def _done(future: asyncio.Future[int], n: int) -> None:
    if not future.done():
        future.set_result(n)


def _fail(future: asyncio.Future[int], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
