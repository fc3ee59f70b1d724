"""Running elshi: serve, web, worker, demo."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

import typer

from elshi.cli.common import (
    Exit,
    State,
    console,
    database,
    fail,
    get_settings,
    progress_bar,
    queue_enrichment,
    set_up_logging,
)
from elshi.settings import Settings, SettingsError

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------- running


@contextmanager
def _key_files_for_children(settings: Settings) -> Any:
    """Hand the secret keys taken from the environment to server processes in key files.

    The files are readable by this user only, in a private folder (in memory under /dev/shm
    where there is one), and removed when the server stops.
    """
    import shutil
    import tempfile

    from elshi.settings import taken_from_environment

    taken = taken_from_environment()
    wanted = {
        "ELSHI_SECRET_KEY_FILE": [settings.secret_key]
        if "ELSHI_SECRET_KEY" in taken and settings.secret_key_file is None
        else [],
        "ELSHI_SECRET_KEY_PREVIOUS_FILE": [taken["ELSHI_SECRET_KEY_PREVIOUS"]]
        if "ELSHI_SECRET_KEY_PREVIOUS" in taken and settings.secret_key_previous_file is None
        else [],
    }
    wanted = {k: v for k, v in wanted.items() if v}
    if not wanted:
        yield
        return
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="elshi-keys-", dir=shm if shm.is_dir() else None))
    try:
        for name, keys in wanted.items():
            path = folder / name.lower()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write("\n".join(keys) + "\n")
            os.environ[name] = str(path)
        yield
    finally:
        for name in wanted:
            os.environ.pop(name, None)
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- serve's worker process

#: How much lower than the web server's the CPU priority of `elshi serve`'s worker process is
#: (os.nice): enrichment takes what the pages leave, so they stay quick while it runs.
WORKER_NICENESS = 10


def _run_worker_process(settings: Settings, workers: int, parent: int, verbose: bool) -> None:
    """The body of `elshi serve`'s worker process: the consumer until the parent stops it."""
    # Its own process group: Ctrl+C in the terminal goes to the server alone, which then
    # stops this process once (a second signal would mean "stop now").
    os.setpgrp()
    set_up_logging(verbose=verbose)
    from elshi import jobs

    c = jobs.consumer(jobs.bind(settings), workers=workers)

    def watch_parent() -> None:
        # The server was killed without stopping this process: stop as if it had.
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_parent, name="elshi-parent-watch", daemon=True).start()
    jobs.run_consumer(c, grace=settings.worker_grace_seconds)


class WorkerProcess:
    """`elshi serve`'s worker and scheduler in a child process at a lower CPU priority.

    The NLP of enrichment holds Python's GIL while it computes; in the web server's process
    it made every page wait. The child is started again if it dies, and stopped (SIGTERM:
    running tasks get the grace period) when the server stops.
    """

    def __init__(self, settings: Settings, *, workers: int = 2) -> None:
        import multiprocessing

        self.settings = settings
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._stopping = threading.Event()
        self.process: Any = None
        self._start()
        self._watch = threading.Thread(target=self._restart, name="elshi-worker-watch", daemon=True)
        self._watch.start()

    def _start(self) -> None:
        verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
        self.process = self._context.Process(
            target=_run_worker_process,
            args=(self.settings, self.workers, os.getpid(), verbose),
            name="elshi-worker",
        )
        self.process.start()
        # Lowered from here, at once: starting (imports, models) is work too.
        with suppress(OSError):  # not allowed here: the worker runs at the server's priority
            mine = os.getpriority(os.PRIO_PROCESS, 0)
            os.setpriority(os.PRIO_PROCESS, self.process.pid, mine + WORKER_NICENESS)

    def _restart(self) -> None:
        while not self._stopping.wait(1.0):
            if self.process.exitcode is not None and not self._stopping.is_set():
                log.warning(
                    "worker process stopped (exit code %s); starting it again",
                    self.process.exitcode,
                )
                self._stopping.wait(5.0)
                if not self._stopping.is_set():
                    self._start()

    def stop(self, *, grace: float) -> bool:
        """Stop the worker process: running tasks get `grace` seconds; then it is killed.
        Return True when it stopped by itself. A second Ctrl+C while waiting stops it now."""
        self._stopping.set()
        self._watch.join()
        proc = self.process
        try:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
            proc.join(grace + 5.0)
        except KeyboardInterrupt:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)  # asked twice: the worker stops now
            proc.join(5.0)
        if proc.is_alive():
            log.warning("worker process still running after %.0f s; killing it", grace + 5)
            proc.kill()
            proc.join()
            return False
        return True


def _serve(
    settings: Settings,
    *,
    web: bool,
    worker: bool,
    workers: int = 2,
    processes: int = 1,
    periodic: bool = True,
) -> None:
    import uvicorn

    from elshi import jobs

    db = database(settings, check=True)
    if web:
        try:
            settings.require_secret()
        except SettingsError as exc:
            raise fail(str(exc), Exit.USAGE) from None
    if web and processes > 1:
        # Each process builds its own app from the same settings (passed on through the
        # environment; secret keys through a private key file); the database is shared.
        db.dispose()
        if State.config is not None:
            os.environ["ELSHI_CONFIG"] = str(State.config)
        os.environ["ELSHI_PORT"] = str(settings.port)
        console.print(
            f"elshi is running at http://{settings.host}:{settings.port}/ ({processes} processes)",
            highlight=False,
        )
        with _key_files_for_children(settings):
            uvicorn.run(
                "elshi.app:app_from_environment",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=processes,
                log_level="warning",
            )
        return
    rt = jobs.bind(settings, db)
    # `elshi serve` runs its worker in a process of its own where the queue can be shared.
    apart = web and worker and jobs.shares_queue(settings)
    consumer = (
        jobs.consumer(rt, workers=workers, periodic=periodic) if worker and not apart else None
    )
    if worker:
        # Catch up at once on sources that fell due while nothing was running.
        jobs.enqueue("schedule_due_sources")
        jobs.enqueue("publish_due")  # and settle publications a stopped worker left
        jobs.enqueue("crisis_tick_now")  # and crisis deliveries
        jobs.enqueue("deliver_outbox")  # and messages stored while no queue took them
    if not web:
        assert consumer is not None
        console.print(
            f"worker running ({workers} threads, scheduler {'on' if periodic else 'off'}); "
            "Ctrl+C or SIGTERM stops "
            f"after running tasks finish (up to {settings.worker_grace_seconds:g} s)"
        )
        jobs.run_consumer(consumer, grace=settings.worker_grace_seconds)
        return
    from elshi.app import create_app

    api = create_app(settings, db=db, runtime=rt)
    if consumer is not None:
        consumer.start()
    process = WorkerProcess(settings, workers=workers) if apart else None
    console.print(f"elshi is running at http://{settings.host}:{settings.port}/", highlight=False)
    try:
        uvicorn.run(api, host=settings.host, port=settings.port, log_level="warning")
    finally:
        if consumer is not None:
            jobs.stop_consumer(consumer, grace=settings.worker_grace_seconds)
        if process is not None:
            process.stop(grace=settings.worker_grace_seconds)


def serve(
    port: Annotated[int | None, typer.Option(help="Port (else ELSHI_PORT).")] = None,
) -> None:
    """Run the web app, the worker and the scheduler in one command.

    The worker and scheduler run in a child process at a lower CPU priority (in threads of
    the web server's process when the queue is memory:// or immediate); stopping the command
    stops it."""
    settings = get_settings(**({"port": port} if port else {}))
    _serve(settings, web=True, worker=True)


def web(
    port: Annotated[int | None, typer.Option(help="Port (else ELSHI_PORT).")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Web server processes on this machine (about one per CPU core). More than "
            "one is meant for PostgreSQL; on SQLite the writes still queue for one file.",
        ),
    ] = 1,
) -> None:
    """Run only the web app (workers run apart with `elshi worker`)."""
    settings = get_settings(**({"port": port} if port else {}))
    _serve(settings, web=True, worker=False, processes=workers)


def worker(
    threads: Annotated[int, typer.Option(help="Worker threads.")] = 2,
    scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler/--no-scheduler",
            help="Also queue the periodic work (due sources, catch-ups, reminders). With "
            "several worker machines, run it on one.",
        ),
    ] = True,
) -> None:
    """Run only the background worker and scheduler."""
    _serve(get_settings(), web=False, worker=True, workers=threads, periodic=scheduler)


def demo(
    port: Annotated[int | None, typer.Option(help="Port (else ELSHI_PORT).")] = None,
    posts: Annotated[int, typer.Option(help="How many demo posts to generate.")] = 3000,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the web app after loading.")
    ] = True,
) -> None:
    """Create a SQLite database with generated kk/ru/en demo data and start elshi."""
    from elshi.demo import load_demo
    from elshi.nlp.jobs import newest_post_id

    overrides: dict[str, Any] = {"demo": True}
    if port:
        overrides["port"] = port
    settings = get_settings(**overrides)
    db = database(settings, check=True)
    with progress_bar("demo corpus") as tick:
        before = newest_post_id(db)
        info = load_demo(db, settings=settings, posts=posts, progress=tick)
    if info["stored"]:
        queue_enrichment(settings, db, before)
    console.print(
        f"demo data in {settings.db_url}: {info['posts']:,} posts, mission {info['mission']!r}",
        highlight=False,
    )
    if info.get("password"):
        console.print(
            f"sign in as {info['email']} with password {info['password']}", highlight=False
        )
        if info.get("citizens"):
            from elshi.demo.people import PEOPLE, STAFF

            console.print(
                "the same password opens the embassy's staff ("
                + ", ".join(email for email, _, _ in STAFF)
                + ") and the citizens' accounts at /consulate ("
                + ", ".join(p.email for p in PEOPLE[:2])
                + ", ...)",
                highlight=False,
            )
    if serve_after:
        _serve(settings, web=True, worker=True)
