"""Alert rules and alerts: create, list, acknowledge, comment; the checks behind each rule kind."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from elshi.accounts.service import PermissionDenied, Principal, audit, scoped
from elshi.alerts.models import RULE_KINDS, Alert, AlertComment, AlertDelivery, AlertRule
from elshi.db import utcnow
from elshi.errors import N_, FieldError
from elshi.listen.models import Post, Source
from elshi.watch.models import Watch, WatchHourly, WatchMatch
from elshi.watch.service import (
    NotFound,
    get_watch,
    may_see_mission,
    mission_view,
    narrative_table_exists,
)

DEFAULTS: dict[str, dict[str, Any]] = {
    "volume_spike": {"window_hours": 24, "threshold": 3.0, "min_count": 10},
    "negative_jump": {"window_hours": 24, "baseline_days": 7, "min_delta": 0.15, "min_count": 10},
    "term": {"terms": []},
    "source_silent": {"source_id": None, "silent_hours": 24},
    "narrative_growth": {"growth": 2.0, "min_posts": 20},
    "coordinated_group": {"min_size": 3, "growth_percent": 50.0, "growth_accounts": 5},
}
MAX_TEXT = 4000


class InvalidRule(FieldError):
    """A rule field is not valid."""


@dataclass
class Finding:
    """What a check found: a key (one alert per key), a summary, the numbers and the posts."""

    key: str
    summary: str
    why: dict[str, Any]
    post_ids: list[int]


# ---------------------------------------------------------------------------- rules


def _number(params: dict[str, Any], name: str, low: float, high: float) -> float:
    try:
        value = float(params[name])
    except (TypeError, ValueError):
        raise InvalidRule(name, N_("not a number")) from None
    if not low <= value <= high:
        raise InvalidRule(
            name, N_("must be from %(low)s to %(high)s"), low=f"{low:g}", high=f"{high:g}"
        )
    return value


def clean_params(kind: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Check a rule's parameters against its kind; fill in defaults."""
    if kind not in RULE_KINDS:
        raise InvalidRule("kind", N_("choose one from the list"))
    params = dict(DEFAULTS[kind])
    params.update({k: v for k, v in raw.items() if k in params and v not in (None, "")})
    if kind == "volume_spike":
        params["window_hours"] = int(_number(params, "window_hours", 1, 168))
        params["threshold"] = _number(params, "threshold", 0.5, 50)
        params["min_count"] = int(_number(params, "min_count", 1, 1_000_000))
    elif kind == "negative_jump":
        params["window_hours"] = int(_number(params, "window_hours", 1, 168))
        params["baseline_days"] = int(_number(params, "baseline_days", 1, 60))
        params["min_delta"] = _number(params, "min_delta", 0.01, 1)
        params["min_count"] = int(_number(params, "min_count", 1, 1_000_000))
    elif kind == "term":
        terms = params["terms"]
        if isinstance(terms, str):
            terms = [t.strip() for t in terms.replace("|", "\n").splitlines() if t.strip()]
        if not terms or any(len(t) > 200 for t in terms):
            raise InvalidRule("terms", N_("give at least one term of at most 200 characters"))
        params["terms"] = terms[:100]
    elif kind == "source_silent":
        params["source_id"] = int(_number(params, "source_id", 1, 2**31))
        params["silent_hours"] = _number(params, "silent_hours", 1, 24 * 60)
    elif kind == "narrative_growth":
        params["growth"] = _number(params, "growth", 1.1, 100)
        params["min_posts"] = int(_number(params, "min_posts", 1, 1_000_000))
    elif kind == "coordinated_group":
        params["min_size"] = int(_number(params, "min_size", 2, 1_000_000))
        params["growth_percent"] = _number(params, "growth_percent", 1, 100_000)
        params["growth_accounts"] = int(_number(params, "growth_accounts", 1, 1_000_000))
    return params


def clean_targets(raw: dict[str, Any]) -> dict[str, Any]:
    """Check e-mail addresses, webhook URL and Telegram chat id."""
    emails = raw.get("emails") or []
    if isinstance(emails, str):
        emails = [e.strip() for e in emails.replace(";", ",").split(",") if e.strip()]
    for e in emails:
        if "@" not in e or " " in e or len(e) > 320:
            raise InvalidRule("emails", N_("%(value)s is not an e-mail address"), value=e[:80])
    webhook = str(raw.get("webhook") or "").strip()
    if webhook and not webhook.startswith(("http://", "https://")):
        raise InvalidRule("webhook", N_("must start with http:// or https://"))
    telegram = str(raw.get("telegram") or "").strip()
    if telegram and not telegram.lstrip("-@").replace("_", "").isalnum():
        raise InvalidRule("telegram", N_("a chat id (digits) or @channel name"))
    return {"emails": emails[:20], "webhook": webhook[:500], "telegram": telegram[:100]}


def create_rule(
    *,
    db: Session,
    principal: Principal,
    watch_id: int,
    kind: str,
    name: str,
    params: dict[str, Any],
    targets: dict[str, Any] | None = None,
    cooldown_minutes: int = 360,
) -> AlertRule:
    """Add an alert rule to a watch list."""
    watch = get_watch(db=db, principal=principal, watch_id=watch_id)
    if not principal.can("alerts.manage", watch.mission_id):
        raise PermissionDenied("alerts.manage")
    if kind == "narrative_growth" and not narrative_table_exists(db):
        raise InvalidRule("kind", N_("narratives are not stored in this installation"))
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidRule("name", N_("between 1 and 200 characters"))
    if not 0 <= cooldown_minutes <= 60 * 24 * 30:
        raise InvalidRule("cooldown", N_("from 0 to 43200 minutes"))
    clean = clean_params(kind, params)
    if kind == "source_silent" and clean["source_id"] not in {
        src.id for src in rule_sources(db=db, mission_id=watch.mission_id)
    }:
        raise InvalidRule("source_id", N_("no such source"))
    if kind == "coordinated_group":
        # The groups there are now are where the rule starts: only groups that appear or
        # grow from here on alert.
        clean["groups"] = group_sizes(db, watch.mission_id, clean["min_size"])
    rule = AlertRule(
        watch_id=watch.id,
        kind=kind,
        name=name,
        params=clean,
        targets=clean_targets(targets or {}),
        cooldown_minutes=cooldown_minutes,
        enabled=True,
    )
    db.add(rule)
    db.flush()
    audit(
        db=db,
        action="alert_rule.created",
        object_type="alert_rule",
        object_id=rule.id,
        actor_id=principal.user_id,
        actor_label=principal.label,
    )
    return rule


def rule_sources(*, db: Session, mission_id: int) -> list[Source]:
    """Return the sources a rule of this mission's watch list may name: the mission's own and
    those of no mission (every source for headquarters)."""
    q = select(Source).order_by(Source.name)
    scope = mission_view(db=db, mission_id=mission_id)
    if scope is not None:
        q = q.where(or_(Source.mission_id.is_(None), Source.mission_id.in_(scope)))
    return list(db.scalars(q))


def rules_of(*, db: Session, watch_id: int) -> list[AlertRule]:
    """Return a watch list's rules."""
    return list(
        db.scalars(select(AlertRule).where(AlertRule.watch_id == watch_id).order_by(AlertRule.id))
    )


def set_rule_enabled(
    *, db: Session, principal: Principal, rule_id: int, enabled: bool
) -> AlertRule:
    """Pause or resume a rule."""
    rule = db.get(AlertRule, rule_id)
    if rule is None:
        raise NotFound(f"no rule {rule_id}")
    watch = get_watch(db=db, principal=principal, watch_id=rule.watch_id)
    if not principal.can("alerts.manage", watch.mission_id):
        raise PermissionDenied("alerts.manage")
    rule.enabled = enabled
    return rule


# ---------------------------------------------------------------------------- alerts


def list_alerts(
    *, db: Session, principal: Principal, status: str | None = None, limit: int = 100
) -> list[Alert]:
    """Return alerts of the user's missions, newest first."""
    q = select(Alert).order_by(Alert.fired_at.desc(), Alert.id.desc()).limit(limit)
    q = scoped(q, Alert.mission_id, principal, "listen.read")
    if status:
        q = q.where(Alert.status == status)
    return list(db.scalars(q))


def open_count(*, db: Session, principal: Principal) -> int:
    """Return how many alerts wait for acknowledgement (the in-app notice)."""
    q = select(func.count()).select_from(Alert).where(Alert.status == "open")
    q = scoped(q, Alert.mission_id, principal, "listen.read")
    return int(db.scalar(q) or 0)


def get_alert(*, db: Session, principal: Principal, alert_id: int) -> Alert:
    """Return an alert the user may see."""
    alert = db.get(Alert, alert_id)
    if alert is None or not may_see_mission(principal, alert.mission_id):
        raise NotFound(f"no alert {alert_id}")
    return alert


def acknowledge(*, db: Session, principal: Principal, alert_id: int) -> Alert:
    """Mark an alert as seen and handled by this user (each press is recorded in the audit)."""
    alert = get_alert(db=db, principal=principal, alert_id=alert_id)
    if alert.status != "acknowledged":
        alert.status = "acknowledged"
        alert.acknowledged_by = principal.user_id
        alert.acknowledged_at = utcnow()
    audit(
        db=db,
        action="alert.acknowledged",
        object_type="alert",
        object_id=alert.id,
        actor_id=principal.user_id,
        actor_label=principal.label,
        mission_id=alert.mission_id,
    )
    return alert


def posts_of(*, db: Session, alert: Alert) -> list[Post]:
    """Return the posts an alert names as its evidence."""
    return list(db.scalars(select(Post).where(Post.id.in_(alert.post_ids or []))))


def comment(*, db: Session, principal: Principal, alert_id: int, text: str) -> AlertComment:
    """Add a comment to an alert."""
    alert = get_alert(db=db, principal=principal, alert_id=alert_id)
    text = text.strip()
    if not text or len(text) > MAX_TEXT:
        raise InvalidRule("comment", N_("between 1 and %(n)s characters"), n=MAX_TEXT)
    row = AlertComment(
        alert_id=alert.id, user_id=principal.user_id, author=principal.label, text=text
    )
    db.add(row)
    db.flush()
    return row


def comments_of(*, db: Session, alert_id: int) -> list[AlertComment]:
    """Return an alert's comments, oldest first."""
    return list(
        db.scalars(
            select(AlertComment).where(AlertComment.alert_id == alert_id).order_by(AlertComment.id)
        )
    )


def deliveries_of(*, db: Session, alert_id: int) -> list[AlertDelivery]:
    """Return an alert's deliveries with their state."""
    return list(
        db.scalars(
            select(AlertDelivery)
            .where(AlertDelivery.alert_id == alert_id)
            .order_by(AlertDelivery.id)
        )
    )


def failed_deliveries(
    *, db: Session, principal: Principal, limit: int = 50
) -> list[tuple[AlertDelivery, Alert]]:
    """Return deliveries that failed at least once, newest first (for the alerts page)."""
    q = (
        select(AlertDelivery, Alert)
        .join(Alert, Alert.id == AlertDelivery.alert_id)
        .where(AlertDelivery.last_error.is_not(None))
        .order_by(AlertDelivery.id.desc())
        .limit(limit)
    )
    q = scoped(q, Alert.mission_id, principal, "listen.read")
    return [(d, a) for d, a in db.execute(q).all()]


# ---------------------------------------------------------------------------- checks


def _as_utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _mad(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    med = statistics.median(values)
    return statistics.median([abs(v - med) for v in values])


def _window_end(db: Session, watch_id: int) -> datetime | None:
    last = db.scalar(select(func.max(WatchHourly.hour)).where(WatchHourly.watch_id == watch_id))
    return _as_utc(last) + timedelta(hours=1) if last else None


def _last_window(db: Session, rule: AlertRule) -> tuple[datetime, datetime] | None:
    """The rule's last window of `window_hours` up to the newest hourly count (start, end);
    None while the watch list has no counts yet."""
    end = _window_end(db, rule.watch_id)
    if end is None:
        return None
    return end - timedelta(hours=int(rule.params["window_hours"])), end


def _hours(
    db: Session, watch_id: int, start: datetime, end: datetime
) -> dict[datetime, tuple[int, int]]:
    rows = db.execute(
        select(WatchHourly.hour, WatchHourly.n, WatchHourly.against).where(
            WatchHourly.watch_id == watch_id, WatchHourly.hour >= start, WatchHourly.hour < end
        )
    )
    return {_as_utc(h): (int(n), int(a)) for h, n, a in rows}


def _sum(hours: dict[datetime, tuple[int, int]], start: datetime, end: datetime) -> tuple[int, int]:
    n = a = 0
    for h, (hn, ha) in hours.items():
        if start <= h < end:
            n += hn
            a += ha
    return n, a


def _top_posts(
    db: Session, watch_id: int, start: datetime, end: datetime, stance: str | None = None
) -> list[int]:
    q = (
        select(WatchMatch.post_id)
        .where(
            WatchMatch.watch_id == watch_id,
            WatchMatch.published_at >= start,
            WatchMatch.published_at < end,
        )
        .order_by(WatchMatch.engagement.desc(), WatchMatch.post_id.desc())
        .limit(10)
    )
    if stance:
        q = q.where(WatchMatch.stance == stance)
    return list(db.scalars(q))


def check_volume_spike(db: Session, rule: AlertRule) -> Finding | None:
    """Posts in the last window against the same window on earlier days (median and MAD).

    Seasonality: when four weeks of history exist, the expected value is the median of the same
    window on the same weekday of the past four weeks; otherwise of the past seven days. The
    spread is the scaled median absolute deviation of the past 14 days (at least the square root
    of the expected count, as for Poisson counts, and at least 1).
    """
    p = rule.params
    window = _last_window(db, rule)
    if window is None:
        return None
    start, end = window
    hours = _hours(db, rule.watch_id, start - timedelta(days=29), end)
    current, _ = _sum(hours, start, end)
    daily = [
        float(_sum(hours, start - timedelta(days=k), end - timedelta(days=k))[0])
        for k in range(1, 29)
    ]
    first = min(hours) if hours else start
    history_days = max(0, (start - first).days)
    weekly = [daily[k - 1] for k in (7, 14, 21, 28) if k <= history_days]
    recent = daily[: min(7, max(history_days, 1))]
    seasonal = len(weekly) >= 2
    expected = statistics.median(weekly if seasonal else recent)
    spread = 1.4826 * _mad(daily[: min(14, max(history_days, 1))])
    scale = max(spread, expected**0.5, 1.0)
    z = (current - expected) / scale
    if current < p["min_count"] or z < p["threshold"]:
        return None
    return Finding(
        key=f"spike:{start:%Y%m%d%H}",
        summary=f"{current} posts in {p['window_hours']} h; expected {expected:.0f} (z = {z:.1f})",
        why={
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "current": current,
            "expected": round(expected, 2),
            "scale": round(scale, 2),
            "z": round(z, 2),
            "threshold": p["threshold"],
            "seasonal": seasonal,
            "baseline": [int(v) for v in (weekly if seasonal else recent)],
        },
        post_ids=_top_posts(db, rule.watch_id, start, end),
    )


def check_negative_jump(db: Session, rule: AlertRule) -> Finding | None:
    """Share of posts against the topic in the last window against the days before."""
    p = rule.params
    window = _last_window(db, rule)
    if window is None:
        return None
    start, end = window
    base_start = start - timedelta(days=int(p["baseline_days"]))
    hours = _hours(db, rule.watch_id, base_start, end)
    n, against = _sum(hours, start, end)
    bn, bagainst = _sum(hours, base_start, start)
    if n < p["min_count"]:
        return None
    share = against / n
    base = bagainst / bn if bn else 0.0
    if share - base < p["min_delta"]:
        return None
    return Finding(
        key=f"negative:{start:%Y%m%d%H}",
        summary=f"{share:.0%} of {n} posts against the topic; before: {base:.0%} of {bn}",
        why={
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "posts": n,
            "against": against,
            "share": round(share, 4),
            "baseline_posts": bn,
            "baseline_against": bagainst,
            "baseline_share": round(base, 4),
            "min_delta": p["min_delta"],
        },
        post_ids=_top_posts(db, rule.watch_id, start, end, stance="negative"),
    )


def check_terms(db: Session, rule: AlertRule, post_ids: list[int]) -> Finding | None:
    """Watch-list terms appearing in newly matched posts (every script and case ending)."""
    from elshi.nlp.entities import compile_watchlist

    if not post_ids:
        return None
    gaz = compile_watchlist(
        [{"id": f"r{i}", "name": t} for i, t in enumerate(rule.params["terms"])]
    )
    if gaz is None:
        return None
    found: dict[str, int] = {}
    hits: list[int] = []
    for chunk_start in range(0, len(post_ids), 500):
        chunk = post_ids[chunk_start : chunk_start + 500]
        for pid, title, body in db.execute(
            select(Post.id, Post.title, Post.text).where(Post.id.in_(chunk))
        ):
            text = f"{title}\n{body}" if title else (body or "")
            words = {text[h.start : h.end] for h in gaz.gazetteer.find(text)}
            if words:
                hits.append(pid)
                for w in words:
                    found[w] = found.get(w, 0) + 1
    if not hits:
        return None
    return Finding(
        key=f"term:{min(hits)}",
        summary=f"{len(hits)} new posts mention " + ", ".join(sorted(found)[:5]),
        why={"terms": rule.params["terms"], "found": found, "posts": len(hits)},
        post_ids=sorted(hits)[-20:],
    )


def check_source_silent(db: Session, rule: AlertRule, now: datetime) -> Finding | None:
    """A source that usually posts has posted nothing for some hours."""
    source = db.get(Source, rule.params["source_id"])
    if source is None or not source.enabled:
        return None
    last = db.scalar(select(func.max(Post.collected_at)).where(Post.source_id == source.id))
    if last is None:
        return None
    last = _as_utc(last)
    silent = (now - last).total_seconds() / 3600
    if silent < rule.params["silent_hours"]:
        return None
    week = db.scalar(
        select(func.count())
        .select_from(Post)
        .where(Post.source_id == source.id, Post.collected_at >= last - timedelta(days=7))
    )
    return Finding(
        key=f"silent:{source.id}:{last:%Y%m%d%H%M}",
        summary=f"{source.name}: nothing for {silent:.0f} h",
        why={
            "source_id": source.id,
            "source": source.name,
            "last_post_at": last.isoformat(),
            "hours_silent": round(silent, 1),
            "silent_hours": rule.params["silent_hours"],
            "posts_in_week_before": int(week or 0),
            "last_error": source.last_error,
        },
        post_ids=[],
    )


def check_narrative_growth(db: Session, rule: AlertRule) -> Finding | None:
    """NARRATIVES: a stored narrative that grew fast since the last check (needs the table)."""
    from elshi.watch.service import top_narratives

    mission_id = db.scalar(select(Watch.mission_id).where(Watch.id == rule.watch_id))
    scope = mission_view(db=db, mission_id=mission_id) if mission_id is not None else frozenset()
    rows = top_narratives(db=db, mission_ids=scope, limit=50)
    if not rows:
        return None
    before: dict[str, int] = rule.params.get("last_sizes") or {}
    now_sizes = {str(r["id"]): int(r["size"] or 0) for r in rows}
    rule.params = {**rule.params, "last_sizes": now_sizes}
    for r in rows:
        old, new = before.get(str(r["id"])), now_sizes[str(r["id"])]
        if old and new >= rule.params["min_posts"] and new >= old * rule.params["growth"]:
            return Finding(
                key=f"narrative:{r['id']}:{new}",
                summary=f"{r['title']}: {old} → {new} posts",
                why={"narrative_id": r["id"], "title": r["title"], "before": old, "now": new},
                post_ids=[],
            )
    return None


# ---------------------------------------------------------------------------- coordination


def group_sizes(db: Session, mission_id: int, min_size: int) -> dict[str, int]:
    """Return {group id: accounts} of the coordinated groups of at least `min_size` accounts
    as this mission sees them (through its posts, as the group pages show them; every group
    whole for headquarters)."""
    from elshi.coordination import evidence
    from elshi.coordination import service as coordination

    scope = mission_view(db=db, mission_id=mission_id)
    if scope is None:
        g = coordination.GROUP
        sizes = {int(gid): int(n) for gid, n in db.execute(select(g.c.id, g.c.size))}
    else:
        sizes = {}
        for gid in evidence.candidate_ids(db=db, mission_ids=scope):
            seen = evidence.seen_group(db=db, group_id=gid, mission_ids=scope)
            if seen is not None:
                sizes[gid] = seen.size
    return {str(gid): n for gid, n in sorted(sizes.items()) if n >= min_size}


def grew(before: int, now: int, params: dict[str, Any]) -> bool:
    """Whether a group grew enough since the last update: by at least `growth_accounts`
    accounts or `growth_percent` percent."""
    gained = now - before
    return gained > 0 and (
        gained >= params["growth_accounts"] or gained * 100 >= params["growth_percent"] * before
    )


def check_coordinated_groups(db: Session, rule: AlertRule) -> list[Finding]:
    """Coordinated groups that appeared, or grew fast, among the posts of the rule's mission
    since the last update; one finding per group (its key names the group and its size).

    The sizes of the last update are kept in the rule (`groups`), so a restart or a second
    run of the same update finds nothing new; what an alert says of a group (accounts,
    posts) is what the mission sees of it."""
    from elshi.coordination import evidence

    p = rule.params
    mission_id = db.scalar(select(Watch.mission_id).where(Watch.id == rule.watch_id))
    if mission_id is None:
        return []
    now = group_sizes(db, mission_id, int(p["min_size"]))
    before: dict[str, int] | None = p.get("groups")
    rule.params = {**p, "groups": now}
    if before is None:
        return []
    scope = mission_view(db=db, mission_id=mission_id)
    found: list[Finding] = []
    for gid, n in sorted(now.items(), key=lambda kv: int(kv[0])):
        old = before.get(gid)
        if old is not None and not grew(old, n, p):
            continue
        seen = evidence.seen_group(db=db, group_id=int(gid), mission_ids=scope)
        if seen is None:
            continue
        why: dict[str, Any] = {"group_id": int(gid), "accounts": n}
        if old is None:
            key, summary = f"group:{gid}:new", f"New coordinated group {gid}: {n} accounts"
            why["min_size"] = p["min_size"]
        else:
            key = f"group:{gid}:grew:{n}"
            summary = f"Coordinated group {gid} grew from {old} to {n} accounts"
            why |= {
                "accounts_before": old,
                "growth_percent": p["growth_percent"],
                "growth_accounts": p["growth_accounts"],
            }
        why |= {
            "handles": [f"@{a.handle}" for a in seen.accounts[:10]],
            "platforms": seen.platforms,
            "languages": seen.languages,
            "first_at": seen.first_at.isoformat() if seen.first_at else None,
            "last_at": seen.last_at.isoformat() if seen.last_at else None,
        }
        latest = sorted({i for x in seen.pairs[-5:] for i in (x.post_a, x.post_b)})
        found.append(Finding(key=key, summary=summary, why=why, post_ids=latest[-10:]))
    return found
