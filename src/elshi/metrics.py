"""Prometheus metrics: what this process counts, and what the database and the queue say.

Two kinds:

- counted by this process as it works (requests and their latency per route template,
  sign-in failures): kept in `REGISTRY`. With several web processes set
  PROMETHEUS_MULTIPROC_DIR (prometheus-client's multi-process mode) to add them up;
- read from the database and the queue at each scrape (queue depth and age, jobs per state,
  posts ingested and enriched, deliveries per channel and state): the same whichever process
  answers, so they need no adding up.

No label holds personal data: routes are templates (`/consulate/requests/{request_id}`),
never the path a person asked for.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "elshi_http_requests",
    "HTTP requests answered, per method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "elshi_http_request_duration_seconds",
    "Time to answer an HTTP request, per method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
SIGNIN_FAILURES = Counter(
    "elshi_signin_failures",
    "Failed sign-ins (wrong password, code or unknown account), per kind of account.",
    ["account"],
    registry=REGISTRY,
)


def signin_failed(*, user_id: int | None, citizen_id: int | None) -> None:
    """Count one failed sign-in (staff, citizen, or an unknown account)."""
    kind = "staff" if user_id is not None else "citizen" if citizen_id is not None else "unknown"
    SIGNIN_FAILURES.labels(account=kind).inc()


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request under its route template."""
    REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    LATENCY.labels(method=method, route=route).observe(seconds)


class StateCollector(Collector):
    """Figures read from the database and the queue when Prometheus scrapes."""

    def __init__(self, db: Any, queue: Any) -> None:
        self.db = db
        self.queue = queue

    def collect(self) -> Iterator[Any]:
        yield from self._queue()
        try:
            found = list(self._database())
        except Exception as exc:  # the database is down: the other figures still go out
            log.warning("metrics: cannot read the database: %s", type(exc).__name__)
            up = GaugeMetricFamily("elshi_database_up", "1 when the database answered.")
            up.add_metric([], 0)
            found = [up]
        yield from found
        yield self._depth

    def _queue(self) -> Iterator[Any]:
        depth = GaugeMetricFamily(
            "elshi_queue_depth",
            "Work waiting: tasks in the task queue (pending, scheduled for later), messages "
            "in the outbox not yet sent, posts not yet enriched.",
            labels=["queue", "state"],
        )
        up = GaugeMetricFamily("elshi_queue_up", "1 when the task queue's storage answered.")
        try:
            if self.queue is None:
                raise RuntimeError("no queue")
            depth.add_metric(["tasks", "pending"], float(self.queue.pending_count()))
            depth.add_metric(["tasks", "scheduled"], float(self.queue.scheduled_count()))
            up.add_metric([], 1)
        except Exception as exc:
            log.warning("metrics: cannot read the task queue: %s", type(exc).__name__)
            up.add_metric([], 0)
        self._depth = depth
        yield up

    def _database(self) -> Iterator[Any]:
        from sqlalchemy import func, select

        from elshi.listen.models import Annotation, IngestRun, Post
        from elshi.nlp.pipeline import ordered
        from elshi.notify.models import OutboxMessage as Outbox

        now = time.time()
        depth = self._depth
        age = GaugeMetricFamily(
            "elshi_queue_age_seconds",
            "Age of the oldest work waiting: the oldest unsent outbox message, the oldest "
            "post after the newest enriched one.",
            labels=["queue"],
        )
        jobs = GaugeMetricFamily(
            "elshi_ingest_runs", "Imports and polls, per state.", labels=["state"]
        )
        ingested = CounterMetricFamily(
            "elshi_ingest_posts",
            "Records read by imports and polls, per outcome (stored, duplicate, "
            "near_duplicate, quarantined).",
            labels=["outcome"],
        )
        annotations = CounterMetricFamily(
            "elshi_enrichment_annotations",
            "Enricher results written (the highest annotation id: it only grows).",
        )
        outbox = GaugeMetricFamily(
            "elshi_outbox_messages",
            "Outgoing messages (e-mail, SMS, push, Telegram, ...) per channel and state; "
            "state failed counts delivery failures.",
            labels=["channel", "state"],
        )
        with self.db.session() as s:
            for state, n in s.execute(
                select(IngestRun.status, func.count()).group_by(IngestRun.status)
            ):
                jobs.add_metric([state], float(n))
            sums = s.execute(
                select(
                    func.coalesce(func.sum(IngestRun.stored), 0),
                    func.coalesce(func.sum(IngestRun.duplicates), 0),
                    func.coalesce(func.sum(IngestRun.near_duplicates), 0),
                    func.coalesce(func.sum(IngestRun.quarantined), 0),
                )
            ).one()
            for outcome, n in zip(
                ("stored", "duplicate", "near_duplicate", "quarantined"), sums, strict=True
            ):
                ingested.add_metric([outcome], float(n))
            annotations.add_metric([], float(s.scalar(select(func.max(Annotation.id))) or 0))
            waiting = 0.0
            oldest: Any = None
            for channel, status, n, first in s.execute(
                select(Outbox.channel, Outbox.status, func.count(), func.min(Outbox.created_at))
                .group_by(Outbox.channel, Outbox.status)
                .order_by(Outbox.channel, Outbox.status)
            ):
                outbox.add_metric([channel, status], float(n))
                if status in ("pending", "sending"):
                    waiting += n
                    oldest = first if oldest is None or first < oldest else oldest
            depth.add_metric(["outbox", "pending"], waiting)
            age.add_metric(["outbox"], max(0.0, now - oldest.timestamp()) if oldest else 0.0)
            pipeline = ordered()
            last_post = s.scalar(select(func.max(Post.id))) or 0
            behind = 0
            first_waiting: Any = None
            if pipeline:
                enriched = (
                    s.scalar(
                        select(func.max(Annotation.post_id)).where(
                            Annotation.enricher == pipeline[-1].slug
                        )
                    )
                    or 0
                )
                behind = max(0, last_post - enriched)
                if behind:
                    first_waiting = s.scalar(
                        select(func.min(Post.collected_at)).where(Post.id > enriched)
                    )
            depth.add_metric(["enrichment", "pending"], float(behind))
            age.add_metric(
                ["enrichment"],
                max(0.0, now - first_waiting.timestamp()) if first_waiting else 0.0,
            )
        up = GaugeMetricFamily("elshi_database_up", "1 when the database answered.")
        up.add_metric([], 1)
        yield from (up, age, jobs, ingested, annotations, outbox)


def exposition(db: Any, queue: Any) -> bytes:
    """The metrics in Prometheus's text format."""
    registry = CollectorRegistry(auto_describe=False)
    multiproc = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=multiproc)
    else:
        registry.register(_Own())
    registry.register(StateCollector(db, queue))
    return generate_latest(registry)


class _Own(Collector):
    """This process's own counters, for a registry built per scrape."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()
