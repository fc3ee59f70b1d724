"""Raise alerts when rules fire, and deliver them: in-app, e-mail, webhook, Telegram; retry."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from elshi import notify
from elshi.accounts.service import audit
from elshi.alerts import service
from elshi.alerts.models import Alert, AlertDelivery, AlertRule
from elshi.db import Database, utcnow
from elshi.notify import Message, SendError
from elshi.settings import Settings
from elshi.watch.models import Watch

log = logging.getLogger(__name__)
#: Rule kinds checked from rollups each time new posts match.
STREAM_KINDS = ("volume_spike", "negative_jump", "term")
#: Rule kinds checked after each coordination update.
COORDINATION_KINDS = ("coordinated_group",)
#: Kinds whose every finding is an event of its own, never held back by the quiet time.
EVENTS = ("term", "coordinated_group")


def _raise(s: Session, rule: AlertRule, watch: Watch, finding: service.Finding) -> Alert | None:
    """Store an alert for a finding unless one exists for its key or the rule cools down."""
    now = utcnow()
    if rule.last_fired_at is not None:
        last = service._as_utc(rule.last_fired_at)
        if now - last < timedelta(minutes=rule.cooldown_minutes) and rule.kind not in EVENTS:
            return None
    alert = Alert(
        rule_id=rule.id,
        watch_id=watch.id,
        mission_id=watch.mission_id,
        kind=rule.kind,
        key=finding.key,
        summary=finding.summary[:1000],
        why=finding.why | {"rule": rule.name, "watch": watch.name},
        post_ids=finding.post_ids,
        status="open",
        fired_at=now,
    )
    try:
        with s.begin_nested():
            s.add(alert)
            s.flush()
    except IntegrityError:
        return None  # this finding was raised before
    rule.last_fired_at = now
    for channel, target in _targets(rule):
        s.add(AlertDelivery(alert_id=alert.id, channel=channel, target=target, next_attempt_at=now))
    audit(
        db=s,
        action="alert.fired",
        object_type="alert",
        object_id=alert.id,
        mission_id=watch.mission_id,
        detail={"rule": rule.id, "kind": rule.kind},
    )
    return alert


def _targets(rule: AlertRule) -> list[tuple[str, str]]:
    t = rule.targets or {}
    out = [("email", e) for e in t.get("emails") or []]
    if t.get("webhook"):
        out.append(("webhook", t["webhook"]))
    if t.get("telegram"):
        out.append(("telegram", t["telegram"]))
    return out


def evaluate_rules(
    s: Session,
    *,
    matched: dict[int, list[int]] | None = None,
    kinds: tuple[str, ...] = STREAM_KINDS,
) -> list[int]:
    """Run the enabled rules of these kinds (for watch lists with new matches); return alert ids."""
    q = (
        select(AlertRule, Watch)
        .join(Watch, Watch.id == AlertRule.watch_id)
        .where(AlertRule.enabled.is_(True), AlertRule.kind.in_(kinds))
    )
    if matched is not None:
        q = q.where(AlertRule.watch_id.in_([w for w, ids in matched.items() if ids]))
    fired: list[int] = []
    now = utcnow()
    for rule, watch in s.execute(q).all():
        finding: service.Finding | None
        if rule.kind == "coordinated_group":
            for found in service.check_coordinated_groups(s, rule):
                alert = _raise(s, rule, watch, found)
                if alert is not None:
                    fired.append(alert.id)
            continue
        if rule.kind == "volume_spike":
            finding = service.check_volume_spike(s, rule)
        elif rule.kind == "negative_jump":
            finding = service.check_negative_jump(s, rule)
        elif rule.kind == "term":
            finding = service.check_terms(s, rule, (matched or {}).get(watch.id, []))
        elif rule.kind == "source_silent":
            finding = service.check_source_silent(s, rule, now)
        else:
            finding = service.check_narrative_growth(s, rule)
        if finding is not None:
            alert = _raise(s, rule, watch, finding)
            if alert is not None:
                fired.append(alert.id)
    return fired


def evaluate_after_batch(db: Database, *, settings: Settings, matched: dict[int, list[int]]) -> int:
    """Check the stream rules of watch lists that matched new posts, then deliver."""
    if not any(matched.values()):
        return 0
    with db.session() as s:
        fired = evaluate_rules(s, matched=matched)
    if fired:
        deliver_due(db, settings=settings)
    return len(fired)


def evaluate_periodic(db: Database, *, settings: Settings) -> int:
    """Check the time-based rules (silent sources, narratives), then deliver."""
    with db.session() as s:
        fired = evaluate_rules(s, kinds=("source_silent", "narrative_growth"))
    deliver_due(db, settings=settings)
    return len(fired)


def evaluate_coordination(db: Database, *, settings: Settings) -> int:
    """Check the coordination rules (after an update drew the groups again), then deliver."""
    with db.session() as s:
        fired = evaluate_rules(s, kinds=COORDINATION_KINDS)
    if fired:
        deliver_due(db, settings=settings)
    return len(fired)


def group_link(alert: Alert, settings: Settings) -> str | None:
    """Return the address of the coordinated group an alert is about (None: no group)."""
    gid = (alert.why or {}).get("group_id")
    return f"{settings.base_url}/coordination/groups/{int(gid)}" if gid is not None else None


def alert_text(alert: Alert, settings: Settings) -> str:
    """Return the plain-text body of an alert message."""
    link = f"{settings.base_url}/alerts/{alert.id}"
    lines = [
        f"[elshi] {alert.why.get('watch', '')}: {alert.why.get('rule', '')}",
        alert.summary,
        "",
    ]
    lines += [f"{k}: {v}" for k, v in alert.why.items() if k not in ("watch", "rule", "baseline")]
    group = group_link(alert, settings)
    lines += ["", link] + ([group] if group else [])
    return "\n".join(lines)


def alert_payload(alert: Alert, settings: Settings) -> dict[str, Any]:
    """Return the JSON a webhook receives."""
    return {
        "type": "elshi.alert",
        "id": alert.id,
        "kind": alert.kind,
        "watch_id": alert.watch_id,
        "mission_id": alert.mission_id,
        "fired_at": alert.fired_at.isoformat(),
        "summary": alert.summary,
        "why": alert.why,
        "post_ids": alert.post_ids,
        "url": f"{settings.base_url}/alerts/{alert.id}",
    } | ({"group_url": group} if (group := group_link(alert, settings)) else {})


def message(alert: Alert, delivery: AlertDelivery, settings: Settings) -> Message:
    """Return what one delivery sends: an e-mail, a Telegram message or a webhook's JSON."""
    if delivery.channel == "webhook":
        return Message(medium="webhook", to=delivery.target, payload=alert_payload(alert, settings))
    if delivery.channel == "telegram":
        return Message(
            medium="telegram",
            to=delivery.target,
            text=alert_text(alert, settings)[:4096],
            preview_links=False,
        )
    return Message(
        medium=delivery.channel,
        to=delivery.target,
        subject=f"[elshi] {alert.why.get('watch', '')}: {alert.summary}"[:200],
        text=alert_text(alert, settings),
    )


def deliver(alert: Alert, delivery: AlertDelivery, settings: Settings) -> None:
    """Send one delivery; raise SendError on failure (retried here whatever its kind)."""
    if delivery.channel not in ("email", "webhook", "telegram"):
        raise SendError(f"unknown channel {delivery.channel!r}", retry=False, kind="config")
    notify.send(message(alert, delivery, settings), settings)


def deliver_due(db: Database, *, settings: Settings, limit: int = 200) -> dict[str, int]:
    """Try every delivery that is due; failures wait longer each time, then are marked failed."""
    counts = {"sent": 0, "retry": 0, "failed": 0}
    with db.session() as s:
        due = list(
            s.execute(
                select(AlertDelivery, Alert)
                .join(Alert, Alert.id == AlertDelivery.alert_id)
                .where(AlertDelivery.status == "pending", AlertDelivery.next_attempt_at <= utcnow())
                .order_by(AlertDelivery.id)
                .limit(limit)
            ).all()
        )
        for delivery, alert in due:
            delivery.attempts += 1
            try:
                deliver(alert, delivery, settings)
            except SendError as exc:
                delivery.last_error = str(exc)[:2000]
                if delivery.attempts >= settings.delivery_max_attempts:
                    delivery.status = "failed"
                    delivery.next_attempt_at = None
                    counts["failed"] += 1
                else:
                    delivery.next_attempt_at = utcnow() + timedelta(
                        minutes=2 ** (delivery.attempts - 1)
                    )
                    counts["retry"] += 1
                log.warning(
                    "alert %s via %s failed (attempt %s)",
                    alert.id,
                    delivery.channel,
                    delivery.attempts,
                )
                continue
            delivery.status = "sent"
            delivery.sent_at = utcnow()
            delivery.next_attempt_at = None
            counts["sent"] += 1
    return counts


def retry_delivery(db: Database, *, delivery_id: int, alert_id: int) -> None:
    """Make a failed delivery due again now (the button on the alert page)."""
    with db.session() as s:
        d = s.get(AlertDelivery, delivery_id)
        if d is not None and d.alert_id == alert_id and d.status != "sent":
            d.status = "pending"
            d.next_attempt_at = utcnow()


def retry_now(db: Database, *, settings: Settings, delivery_id: int, alert_id: int) -> None:
    """Make a failed delivery due again and send what is due (the button on the alert page)."""
    retry_delivery(db, delivery_id=delivery_id, alert_id=alert_id)
    deliver_due(db, settings=settings)
