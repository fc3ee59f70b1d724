"""Group commit for check-ins: requests hand their one INSERT to a writer thread that runs a
batch in one transaction; each request is answered only after its batch committed, so an
accepted answer is never lost, and a burst costs one commit per batch instead of per answer."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

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

    def _ensure(self) -> None:
        if self.thread is None:
            with self.lock:
                if self.thread is None:
                    self.thread = threading.Thread(
                        target=self._run, name="crisis-checkin-writer", daemon=True
                    )
                    self.thread.start()

    async def write(self, statement: Any) -> int:
        """Run the statement in the next batch; return its row count once committed."""
        self._ensure()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self.queue.put((statement, loop, future))
        return await future

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
                with self.db.engine.begin() as conn:
                    for statement, _, _ in batch:
                        counts.append(int(conn.execute(statement).rowcount or 0))
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
