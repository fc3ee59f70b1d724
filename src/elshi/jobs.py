"""Background work through huey: SQLite storage by default, Redis for scale-out.

Domains declare tasks with @task / @periodic; bind() attaches them to a huey instance built
from settings, so nothing is configured at import time. PIPELINE states the way new posts go
through the tasks; each stage's task queues the stages after it with `pass_on`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab
from huey.api import Result, TaskWrapper

from elshi.db import Database
from elshi.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class _Declared:
    fn: Callable[..., Any]
    schedule: Any | None = None
    retries: int = 0
    retry_delay: int = 0


_DECLARED: dict[str, _Declared] = {}

#: Modules whose import declares tasks; imported by bind().
TASK_MODULES = (
    "elshi.listen.jobs",
    "elshi.nlp.jobs",
    "elshi.consulate.jobs",
    "elshi.watch.jobs",
    "elshi.alerts.jobs",
    "elshi.digest.jobs",
    "elshi.speak.jobs",
    "elshi.crisis.jobs",
    "elshi.notify.jobs",
    "elshi.coordination.jobs",
    "elshi.actors.jobs",
)


@dataclass(frozen=True)
class Stage:
    """One step new posts go through: its name, the task that runs it (None when the task of
    the stage before runs it too) and the stage it comes after."""

    name: str
    task: str | None
    after: str | None = None


#: The way new posts go, in order: ingest -> enrich -> narratives and watches -> alerts;
#: coordination (co-actions between accounts) runs after ingest, beside enrichment.
#: When a stage's task is done it queues the stages that come after it (`pass_on`) with the
#: range of post ids it handled. Narratives and watch lists both come after enrichment and run
#: side by side; the watch-list task checks the alert rules itself, on the posts it matched.
#: Periodic catch-ups (enrich_pending, narratives_pending, catch_up_watches) redo any stage a
#: queued task missed.
PIPELINE: tuple[Stage, ...] = (
    Stage("ingest", "poll_source"),
    Stage("enrich", "enrich_new_posts", after="ingest"),
    Stage("narratives", "assign_narratives", after="enrich"),
    Stage("watches", "update_watches", after="enrich"),
    Stage("alerts", None, after="watches"),
    Stage("coordination", "update_coordination", after="ingest"),
)


def following(stage: str) -> tuple[Stage, ...]:
    """Return the stages that come right after `stage`, in PIPELINE order."""
    if stage not in {s.name for s in PIPELINE}:
        raise KeyError(f"no pipeline stage {stage!r}; known: {', '.join(s.name for s in PIPELINE)}")
    return tuple(s for s in PIPELINE if s.after == stage)


def pass_on(stage: str, *args: Any, skip: Collection[str] = ()) -> list[str]:
    """Queue the task of each stage after `stage` (but those in `skip`) with `args`; return
    the names of the tasks queued. A stage whose work runs inside another task is not queued."""
    queued = []
    for nxt in following(stage):
        if nxt.task is not None and nxt.name not in skip:
            enqueue(nxt.task, *args)
            queued.append(nxt.task)
    return queued


def task(
    retries: int = 0, retry_delay: int = 0
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a queued task; enqueue it with enqueue(name, ...)."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        _DECLARED[fn.__name__] = _Declared(fn, None, retries, retry_delay)
        return fn

    return deco


def periodic(schedule: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a periodic task run by the scheduler, e.g. @periodic(crontab(minute='*'))."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        _DECLARED[fn.__name__] = _Declared(fn, schedule)
        return fn

    return deco


class Runtime:
    """What tasks need in a worker process: settings, the database and the queue."""

    def __init__(self, settings: Settings, huey: Huey, db: Database | None = None) -> None:
        self.settings = settings
        self.huey = huey
        self.db = db or Database(settings)
        self.tasks: dict[str, TaskWrapper] = {}
        #: Set when this process's worker is asked to stop: long tasks end at a safe point.
        self.stop_flag: Any = threading.Event()


_RUNTIME: Runtime | None = None


def runtime() -> Runtime:
    """Return this process's runtime; bind() must have been called."""
    if _RUNTIME is None:
        raise RuntimeError("the task queue is not set up in this process (call jobs.bind)")
    return _RUNTIME


def current() -> Runtime | None:
    """Return this process's runtime, or None when no queue is set up here."""
    return _RUNTIME


def build_huey(settings: Settings) -> Huey:
    """Create the huey instance the settings ask for."""
    url = settings.queue_url
    name = settings.queue_name
    if url.startswith(("redis://", "rediss://")):
        return RedisHuey(name, url=url, immediate=settings.queue_immediate)
    if url.startswith("memory://"):
        return MemoryHuey(name, immediate=settings.queue_immediate)
    path = (
        url.removeprefix("sqlite:///")
        if url.startswith("sqlite:///")
        else str(Path(settings.home) / "queue.db")
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=path, immediate=settings.queue_immediate)


def bind(settings: Settings, db: Database | None = None) -> Runtime:
    """Build the queue from settings and attach every declared task to it."""
    global _RUNTIME
    import importlib

    for mod in TASK_MODULES:
        importlib.import_module(mod)
    huey = build_huey(settings)
    rt = Runtime(settings, huey, db)
    for name, decl in _DECLARED.items():
        if decl.schedule is not None:
            rt.tasks[name] = huey.periodic_task(decl.schedule, name=name)(decl.fn)
        else:
            rt.tasks[name] = huey.task(
                retries=decl.retries, retry_delay=decl.retry_delay, name=name
            )(decl.fn)
    _RUNTIME = rt
    return rt


def enqueue(name: str, *args: Any, **kwargs: Any) -> Result | None:
    """Queue the declared task `name` with arguments; return its result handle."""
    rt = runtime()
    try:
        wrapper = rt.tasks[name]
    except KeyError:
        raise KeyError(f"no task named {name!r}; declared: {', '.join(sorted(rt.tasks))}") from None
    return wrapper(*args, **kwargs)


def stopping() -> bool:
    """Return True once this process's worker has been asked to stop.

    A task that works through many items (a crisis batch) checks this between items and
    returns early, leaving what it did not start for the next worker."""
    return _RUNTIME is not None and bool(_RUNTIME.stop_flag.is_set())


def wait_unless_stopping(seconds: float) -> bool:
    """Sleep up to `seconds`, waking at once when the worker is asked to stop; return
    True when it was (the caller then stops)."""
    if _RUNTIME is None:
        time.sleep(seconds)
        return False
    return bool(_RUNTIME.stop_flag.wait(seconds))


def consumer(rt: Runtime, *, workers: int = 2, periodic: bool = True) -> Any:
    """Return a huey consumer for this runtime (threads; scheduler on when periodic)."""
    c = rt.huey.create_consumer(
        workers=workers,
        worker_type="thread",
        periodic=periodic,
        check_worker_health=True,
        initial_delay=0.1,
        max_delay=1.0,
    )
    rt.stop_flag = c.stop_flag
    return c


#: Signals that stop a worker gracefully: systemd and Docker send SIGTERM, a terminal SIGINT.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_consumer(c: Any, *, grace: float) -> bool:
    """Ask the consumer's threads to stop and wait up to `grace` seconds for running tasks
    to finish; return True when all did (a task still running is abandoned)."""
    c.stop_flag.set()
    deadline = time.monotonic() + grace
    threads = [t for _, t in c.worker_threads] + [c.scheduler]
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t for t in threads if t.is_alive()]
    if alive:
        log.warning(
            "worker: %d task(s) still running after %.0f s; stopping without them",
            len(alive),
            grace,
        )
        c.huey.notify_interrupted_tasks()
        return False
    return True


def run_consumer(c: Any, *, grace: float, health_interval: float = 10.0) -> int | None:
    """Run the consumer in this (main) thread until a signal stops it; return the signal.

    SIGTERM and SIGINT stop gracefully: no new task starts, tasks that check `stopping()`
    end at their next safe point, and running tasks get up to `grace` seconds before the
    process goes on without them. A second SIGTERM or SIGINT stops at once. SIGHUP stops
    the same way, then starts the worker again with the same command line.
    """
    got: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        if got:
            raise KeyboardInterrupt  # asked twice: stop now
        got.append(signum)  # only a note: taking a lock here could deadlock the main thread

    c.start()  # huey sets its own handlers here; elshi's replace them
    for sig in (*STOP_SIGNALS, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        checked = time.monotonic()
        while not got:
            time.sleep(0.1)
            if time.monotonic() - checked >= health_interval:
                c.check_worker_health()
                checked = time.monotonic()
        name = signal.Signals(got[0]).name
        log.info("worker: %s received; finishing running tasks (up to %.0f s)", name, grace)
        stop_consumer(c, grace=grace)
    except KeyboardInterrupt:
        log.warning("worker: asked again; stopping now")
        c.stop_flag.set()
        c.huey.notify_interrupted_tasks()
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if got and got[0] == signal.SIGHUP:
        from elshi.settings import start_again

        log.info("worker: starting again")
        start_again()
    return got[0] if got else None


def shares_queue(settings: Settings) -> bool:
    """Return True when another process can take this process's tasks (a queue file or Redis,
    not memory:// and not immediate mode)."""
    return not settings.queue_immediate and not settings.queue_url.startswith("memory://")


__all__ = [
    "PIPELINE",
    "Runtime",
    "Stage",
    "bind",
    "build_huey",
    "consumer",
    "crontab",
    "current",
    "enqueue",
    "following",
    "pass_on",
    "periodic",
    "run_consumer",
    "shares_queue",
    "stop_consumer",
    "stopping",
    "task",
    "wait_unless_stopping",
]
