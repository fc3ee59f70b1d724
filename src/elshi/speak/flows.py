"""Side effects of Speak: publish, retry, reconcile after a crash, edit, delete, collect reach,
send the newsletter confirmation.

The publish path never posts twice: the publication row and its idempotency key exist
before the platform is called; a worker claims a row by moving it from pending to sending
in one conditional UPDATE; a row left in sending by a worker that stopped is reconciled by
what the channel can tell (same idempotency key, saved record key, or a look-up), and
where the platform can tell nothing the row becomes "unknown" for a person to check.

An answer that leaves it open whether the platform took the post (a 5xx, or the connection
lost after the request left) is treated like a crash: on a channel where sending again could
post twice, elshi looks the post up before any new try. Found, it is recorded as sent with
the platform's id; not there, it is tried again later (looking once more first); when the
look-up itself fails the row is "unknown" and looked up again later, never sent blind.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from elshi.accounts.service import Principal, audit_by, authorize
from elshi.db import Database, utcnow
from elshi.speak import crypto, media, service
from elshi.speak.channels.base import (
    RETRYABLE,
    Channel,
    ChannelContext,
    ChannelError,
    NotSupported,
    Outgoing,
    Sent,
)
from elshi.speak.models import ChannelAccount, MetricSnapshot, Publication, Statement
from elshi.web.i18n import N_

log = logging.getLogger(__name__)

#: Seconds to wait after the n-th failed try of a retryable error (no Retry-After given).
BACKOFF = (30, 120, 600, 1800, 3600)
#: Failures after which the platform may have the post all the same: a 5xx answer, or the
#: connection lost after the request left.
AMBIGUOUS = frozenset({"server_error", "unsure"})
#: Why a publication a stopped worker left in sending is in doubt.
STOPPED = "the worker stopped while sending"


def _load(
    database: Database, publication_id: int
) -> tuple[Publication, ChannelAccount, Statement] | None:
    with database.session() as s:
        pub = s.get(Publication, publication_id)
        if pub is None:
            return None
        account = s.get(ChannelAccount, pub.account_id)
        st = s.get(Statement, pub.statement_id)
        assert account is not None and st is not None
        s.expunge_all()
        return pub, account, st


def _plugin(account: ChannelAccount, ctx: ChannelContext) -> tuple[Channel, Any, Any]:
    from elshi.plugins import get_channel

    plugin = get_channel(account.channel)
    config = plugin.Config.model_validate(account.config)
    secrets = plugin.Secrets.model_validate(crypto.decrypt(ctx.settings, account.secret))
    return plugin, config, secrets


def _outgoing(pub: Publication, st: Statement, headline: str) -> Outgoing:
    return Outgoing(
        publication_id=pub.id,
        idempotency_key=pub.idempotency_key,
        text=pub.text,
        lang=pub.lang,
        headline=headline or st.title,
        mission_id=st.mission_id,
        extra=dict(pub.extra or {}),
    )


def _headline(database: Database, pub: Publication) -> tuple[str, list[dict[str, Any]]]:
    from elshi.speak.models import StatementVersion

    with database.session() as s:
        v = s.get(StatementVersion, pub.version_id)
        return (v.headline, list(v.media or [])) if v else ("", [])


def _claim(database: Database, publication_id: int, *, from_status: str = "pending") -> bool:
    """Move a publication to sending if it is still in `from_status`; True if this call won."""
    now = utcnow()
    with database.session() as s:
        res = s.execute(
            update(Publication)
            .where(Publication.id == publication_id, Publication.status == from_status)
            .values(
                status="sending",
                claimed_at=now,
                attempts=Publication.attempts + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(res, "rowcount", 0) == 1)


def _record_sent(database: Database, publication_id: int, sent: Sent) -> None:
    with database.session() as s:
        pub = s.get(Publication, publication_id)
        assert pub is not None
        pub.status = "sent"
        pub.sent_at = pub.sent_at or utcnow()
        pub.external_id = sent.external_id
        pub.url = sent.url
        pub.extra = {**(pub.extra or {}), **sent.extra}
        pub.error_kind = pub.error = None
        pub.error_detail = {}
        pub.retry_at = None
        pub.updated_at = utcnow()
        account = s.get(ChannelAccount, pub.account_id)
        if account is not None:
            account.last_error = None


def _record_error(
    database: Database,
    publication_id: int,
    exc: ChannelError,
    max_attempts: int,
    *,
    retry_safe: bool = False,
    in_doubt: bool = False,
) -> str:
    """Record a failed try and decide what follows: a later try, failed, or unknown.

    `retry_safe`: sending again cannot make a second post (an "unsure" try is then retried);
    `in_doubt`: the try may have posted but a look-up did not find it, so the next try looks
    again first.
    """
    now = utcnow()
    with database.session() as s:
        pub = s.get(Publication, publication_id)
        assert pub is not None
        pub.error_kind = exc.kind
        pub.error = exc.message
        pub.error_detail = {"status": exc.status, "retry_after": exc.retry_after}
        if in_doubt:
            pub.error_detail["in_doubt"] = True
        pub.updated_at = now
        may_retry = exc.kind in RETRYABLE or (exc.kind == "unsure" and (retry_safe or in_doubt))
        if may_retry and pub.attempts < max_attempts:
            wait = exc.retry_after
            if wait is None:
                wait = BACKOFF[min(pub.attempts, len(BACKOFF)) - 1]
            pub.status = "pending"
            pub.retry_at = now + timedelta(seconds=max(1.0, wait))
        elif exc.kind == "unsure" and not in_doubt:
            pub.status = "unknown"  # nobody looked for it: a person checks
            pub.retry_at = None
        else:
            pub.status = "failed"
            pub.retry_at = None
        account = s.get(ChannelAccount, pub.account_id)
        if account is not None and exc.kind in ("expired_token", "rate_limited"):
            account.last_error, account.last_error_at = exc.message, now
        return pub.status


def _in_doubt(
    database: Database, publication_id: int, message: str, *, check_later: bool, max_checks: int
) -> str:
    """Mark a publication "unknown": its post may be on the platform and nobody could tell.

    With `check_later` (the look-up failed for a reason that passes) elshi looks again after
    a back-off, at most `max_checks` times; otherwise it waits for a person.
    """
    now = utcnow()
    with database.session() as s:
        pub = s.get(Publication, publication_id)
        assert pub is not None
        detail = dict(pub.error_detail or {})
        checks = int(detail.get("checks") or 0) + (1 if check_later else 0)
        pub.status, pub.error_kind, pub.error = "unknown", "unsure", message[:500]
        pub.error_detail = {**detail, "in_doubt": True, "checks": checks}
        pub.retry_at = None
        if check_later and checks <= max_checks:
            pub.retry_at = now + timedelta(seconds=BACKOFF[min(checks, len(BACKOFF)) - 1])
        pub.updated_at = now
    return "unknown"


def _look_up(
    database: Database,
    publication_id: int,
    ctx: ChannelContext,
    found_by: tuple[Channel, Any, Any],
    post: Outgoing,
    why: str,
) -> str | None:
    """Look for the post an earlier try may have made, before any new try.

    Return "sent" when it is there (recorded with the platform's id and link), "unknown"
    when nobody can tell (the platform cannot be searched, or the search failed), and None
    when it is not there, so that sending it is safe.
    """
    plugin, config, secrets = found_by
    try:
        found = plugin.find(ctx, config, secrets, post)
    except NotSupported:
        return _in_doubt(
            database,
            publication_id,
            f"{why}; the platform cannot say if it arrived",
            check_later=False,
            max_checks=0,
        )
    except ChannelError as exc:
        log.info("looking up publication %s failed: %s", publication_id, exc.kind)
        return _in_doubt(
            database,
            publication_id,
            f"{why}; looking for the post failed ({exc.message})",
            check_later=exc.kind in RETRYABLE or exc.kind == "unsure",
            max_checks=ctx.settings.publish_max_attempts,
        )
    if found is None:
        return None
    log.info("publication %s was already on %s", publication_id, plugin.slug)
    _record_sent(database, publication_id, found)
    return "sent"


def _save_extra(database: Database, publication_id: int, facts: dict[str, Any]) -> None:
    with database.session() as s:
        row = s.get(Publication, publication_id)
        assert row is not None
        row.extra = {**(row.extra or {}), **facts}
        row.updated_at = utcnow()


def send_publication(database: Database, publication_id: int, ctx: ChannelContext) -> str:
    """Publish one publication if it is due and unclaimed; return its status afterwards.

    Refuses (and records why) when the statement is not approved exactly as it stands.
    """
    if not _claim(database, publication_id):
        loaded = _load(database, publication_id)
        return loaded[0].status if loaded else "missing"
    return _send_claimed(database, publication_id, ctx)


def _send_claimed(database: Database, publication_id: int, ctx: ChannelContext) -> str:
    loaded = _load(database, publication_id)
    assert loaded is not None
    pub, account, st = loaded
    with database.session() as s:
        statement = s.get(Statement, st.id)
        assert statement is not None
        try:
            service.assert_publishable(db=s, statement=statement)
        except service.NotApproved as exc:
            blocked = s.get(Publication, pub.id)
            assert blocked is not None
            blocked.status, blocked.error_kind, blocked.error = "failed", "not_approved", str(exc)
            log.warning("publication %s blocked: %s", pub.id, exc)
            return "failed"
    try:
        plugin, config, secrets = _plugin(account, ctx)
    except (crypto.CredentialsUnreadable, ValueError) as exc:
        return _record_error(database, pub.id, ChannelError("expired_token", str(exc)[:500]), 1)
    headline, media_items = _headline(database, pub)
    post = _outgoing(pub, st, headline)
    post.media = media_items
    try:
        post.images = media.images_of(ctx.settings, media_items)
    except media.MediaError as exc:
        return _record_error(database, pub.id, ChannelError("media_rejected", str(exc)), 1)
    post.saver = lambda facts: _save_extra(database, pub.id, facts)
    prepared = plugin.prepare(post)
    if prepared and prepared != {k: post.extra.get(k) for k in prepared}:
        # Saved before the platform is called: a retry after a crash reuses it.
        post.remember(**prepared)
    found_by = (plugin, config, secrets)
    if (pub.error_detail or {}).get("in_doubt") and not plugin.retry_safe:
        # An earlier try may have posted: look before sending again.
        why = pub.error or "an earlier try may have posted it"
        settled = _look_up(database, pub.id, ctx, found_by, post, why)
        if settled is not None:
            return settled
    try:
        sent = plugin.publish(ctx, config, secrets, post)
    except ChannelError as exc:
        log.info("publication %s on %s failed: %s", pub.id, account.channel, exc.kind)
        max_attempts = ctx.settings.publish_max_attempts
        if exc.kind in AMBIGUOUS and not plugin.retry_safe:
            # The platform may have taken the post before failing: never send it blind.
            settled = _look_up(database, pub.id, ctx, found_by, post, exc.message)
            if settled is not None:
                return settled
            return _record_error(database, pub.id, exc, max_attempts, in_doubt=True)
        return _record_error(database, pub.id, exc, max_attempts, retry_safe=plugin.retry_safe)
    _record_sent(database, pub.id, sent)
    return "sent"


def reconcile(database: Database, publication_id: int, ctx: ChannelContext) -> str:
    """Settle a publication a stopped worker left in sending; return its new status."""
    loaded = _load(database, publication_id)
    if loaded is None or loaded[0].status != "sending":
        return loaded[0].status if loaded else "missing"
    pub, account, _st = loaded
    plugin, _config, _secrets = _plugin(account, ctx)
    now = utcnow()
    values: dict[str, Any] = {
        "claimed_at": now,
        "updated_at": now,
        "attempts": Publication.attempts + 1,
    }
    if not plugin.retry_safe:
        # The stopped try may have posted: the claimed send looks the post up first (and
        # without a way to look, the publication waits for a person).
        values["error_detail"] = {**(pub.error_detail or {}), "in_doubt": True}
        values["error"] = STOPPED
    # Retry-safe channels (same idempotency key / record key) simply send again.
    with database.session() as s:
        res = s.execute(
            update(Publication)
            .where(Publication.id == pub.id, Publication.status == "sending")
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if getattr(res, "rowcount", 0) != 1:  # another worker settled it meanwhile
            row = s.get(Publication, pub.id)
            return row.status if row else "missing"
    return _send_claimed(database, pub.id, ctx)


def publish_due(
    database: Database, ctx: ChannelContext, now: datetime | None = None
) -> dict[str, list[int]]:
    """Reconcile stuck publications, put back those in doubt whose look-up is due, then
    return the ids of those due now (for the queue)."""
    now = now or utcnow()
    with database.session() as s:
        # "unknown" with a retry time: a look-up failed and is due again. The send looks
        # the post up first (error_detail.in_doubt) and sends only if it is not there.
        checked = list(
            s.scalars(
                select(Publication.id).where(
                    Publication.status == "unknown",
                    Publication.retry_at.is_not(None),
                    Publication.retry_at <= now,
                )
            )
        )
        if checked:
            s.execute(
                update(Publication)
                .where(Publication.id.in_(checked), Publication.status == "unknown")
                .values(status="pending", updated_at=now)
                .execution_options(synchronize_session=False)
            )
    with database.session() as s:
        due, stuck = service.due_publications(
            db=s, now=now, lease=timedelta(seconds=ctx.settings.publish_lease_seconds)
        )
    for pid in stuck:
        try:
            reconcile(database, pid, ctx)
        except Exception:  # one broken account must not stop the others
            log.exception("reconciling publication %s failed", pid)
    return {"due": due, "reconciled": stuck, "checked": checked}


def publish_statement(
    database: Database, *, actor: Principal, statement_id: int, ctx: ChannelContext
) -> dict[int, str]:
    """Send a statement's due publications now, in this process; return status by id."""
    with database.session() as s:
        st = service.get_statement(db=s, actor=actor, statement_id=statement_id)
        authorize(actor, "speak.draft", mission_id=st.mission_id)
        service.assert_publishable(db=s, statement=st)
        now = utcnow()
        ids = [
            p.id
            for p in service.publications_of(db=s, statement_id=statement_id)
            if p.status == "pending" and p.due_at <= now
        ]
    return {pid: send_publication(database, pid, ctx) for pid in ids}


def retry_publication(
    database: Database, *, actor: Principal, publication_id: int, send_again: bool = False
) -> Publication:
    """Put a failed publication back in the queue.

    An "unknown" one (a worker stopped mid-send on a platform that cannot tell) goes again
    only with send_again=True, after a person checked the channel.
    """
    with database.session() as s:
        pub = service.get_publication(db=s, actor=actor, publication_id=publication_id)
        st = s.get(Statement, pub.statement_id)
        assert st is not None
        authorize(actor, "speak.draft", mission_id=st.mission_id)
        if pub.status == "unknown" and not send_again:
            raise service.SpeakError(
                N_(
                    "Check the channel first: if the post is there, mark it sent; "
                    "if not, send it again."
                )
            )
        if pub.status not in ("failed", "unknown"):
            raise service.SpeakError(N_("Only a failed publication can be retried."))
        from elshi.speak.models import StatementVersion

        version = s.get(StatementVersion, pub.version_id)
        if version is not None:
            pub.text = version.text_for(pub.channel)  # a shortened or corrected text goes out
        pub.status, pub.retry_at, pub.attempts = "pending", None, 0
        pub.due_at = min(pub.due_at, utcnow())
        pub.error_kind = pub.error = None
        pub.error_detail = {}  # a person checked the channel: no look-up first
        audit_by(actor, s, "publication.retry", "publication", pub.id, mission_id=st.mission_id)
        s.flush()
        s.expunge(pub)
        return pub


def mark_sent(
    database: Database, *, actor: Principal, publication_id: int, url: str | None = None
) -> None:
    """Record that a person found an "unknown" publication on the channel."""
    with database.session() as s:
        pub = service.get_publication(db=s, actor=actor, publication_id=publication_id)
        st = s.get(Statement, pub.statement_id)
        assert st is not None
        authorize(actor, "speak.draft", mission_id=st.mission_id)
        if pub.status != "unknown":
            raise service.SpeakError(N_("Only a publication in doubt can be marked sent."))
        pub.status, pub.sent_at, pub.url = "sent", utcnow(), url or pub.url
        pub.error_kind = pub.error = None
        pub.error_detail, pub.retry_at = {}, None
        audit_by(actor, s, "publication.mark_sent", "publication", pub.id, mission_id=st.mission_id)


def _sent_target(
    database: Database, actor: Principal, publication_id: int, ctx: ChannelContext
) -> tuple[Publication, Channel, Any, Any, int]:
    with database.session() as s:
        pub = service.get_publication(db=s, actor=actor, publication_id=publication_id)
        st = s.get(Statement, pub.statement_id)
        account = s.get(ChannelAccount, pub.account_id)
        assert st is not None and account is not None
        authorize(actor, "speak.draft", mission_id=st.mission_id)
        if pub.status != "sent" or not pub.external_id:
            raise service.SpeakError(N_("Only a sent publication can be edited or deleted."))
        s.expunge_all()
    plugin, config, secrets = _plugin(account, ctx)
    return pub, plugin, config, secrets, st.mission_id


def delete_publication(
    database: Database, *, actor: Principal, publication_id: int, ctx: ChannelContext
) -> None:
    """Take a sent post down where the platform allows."""
    pub, plugin, config, secrets, mission_id = _sent_target(database, actor, publication_id, ctx)
    if not plugin.can_delete:
        raise service.SpeakError(
            N_("%(channel)s does not allow deleting a post."), channel=plugin.title
        )
    assert pub.external_id is not None
    plugin.delete(ctx, config, secrets, pub.external_id)
    plugin.delete_parts(ctx, config, secrets, pub.extra or {})
    with database.session() as s:
        row = s.get(Publication, pub.id)
        assert row is not None
        row.status, row.updated_at = "deleted", utcnow()
        audit_by(actor, s, "publication.delete", "publication", pub.id, mission_id=mission_id)


def edit_publication(
    database: Database, *, actor: Principal, publication_id: int, ctx: ChannelContext
) -> None:
    """Replace a sent post's text with its version's current, approved text."""
    pub, plugin, config, secrets, mission_id = _sent_target(database, actor, publication_id, ctx)
    if not plugin.can_edit:
        raise service.SpeakError(
            N_("%(channel)s does not allow editing a post."), channel=plugin.title
        )
    from elshi.speak.models import StatementVersion

    with database.session() as s:
        st = s.get(Statement, pub.statement_id)
        assert st is not None
        service.assert_publishable(db=s, statement=st)
        version = s.get(StatementVersion, pub.version_id)
        assert version is not None
        text = version.text_for(pub.channel)
    assert pub.external_id is not None
    plugin.edit(ctx, config, secrets, pub.external_id, text)
    with database.session() as s:
        row = s.get(Publication, pub.id)
        assert row is not None
        row.text, row.updated_at = text, utcnow()
        audit_by(actor, s, "publication.edit", "publication", pub.id, mission_id=mission_id)


def collect_reach(database: Database, ctx: ChannelContext, *, days: int | None = None) -> int:
    """Take an engagement snapshot of every recent sent publication; return how many."""
    since = utcnow() - timedelta(days=days or ctx.settings.reach_days)
    with database.session() as s:
        pubs = list(
            s.scalars(
                select(Publication).where(
                    Publication.status == "sent", Publication.sent_at >= since
                )
            )
        )
        accounts = {
            a.id: a
            for a in s.scalars(
                select(ChannelAccount).where(ChannelAccount.id.in_({p.account_id for p in pubs}))
            )
        }
        s.expunge_all()
    taken = 0
    for pub in pubs:
        try:
            plugin, config, secrets = _plugin(accounts[pub.account_id], ctx)
            sent = Sent(external_id=pub.external_id or "", url=pub.url, extra=pub.extra or {})
            m = plugin.metrics(ctx, config, secrets, sent, pub.id)
        except (ChannelError, crypto.CredentialsUnreadable, ValueError) as exc:
            log.info("engagement of publication %s not read: %s", pub.id, exc)
            continue
        try:
            people = plugin.engagers(ctx, config, secrets, sent, ctx.settings.audience_max_pages)
        except ChannelError as exc:
            # The counts above still count; the list of accounts waits for the next round.
            log.info("engaging accounts of publication %s not read: %s", pub.id, exc.kind)
            people = None
        if people:
            with database.session() as s:
                service.record_engagers(
                    db=s, publication_id=pub.id, platform=pub.channel, engagers=people
                )
        if m is None:
            continue
        with database.session() as s:
            s.add(
                MetricSnapshot(
                    publication_id=pub.id,
                    views=m.views,
                    reactions=m.reactions,
                    reposts=m.reposts,
                    replies=m.replies,
                    raw=m.raw,
                )
            )
        taken += 1
    return taken


def request_subscription(
    database: Database, *, mission_slug: str, email: str, lang: str, ctx: ChannelContext
) -> bool:
    """Record a newsletter sign-up and e-mail the confirmation link (double opt-in).

    Returns False when the mission has no newsletter channel to send from.
    """
    from elshi.missions.models import Mission
    from elshi.speak.channels.email import EmailConfig, EmailSecrets, send_mail
    from elshi.web.i18n import gettext

    with database.session() as s:
        mission = s.scalar(select(Mission).where(Mission.slug == mission_slug))
        account = (
            s.scalar(
                select(ChannelAccount).where(
                    ChannelAccount.mission_id == mission.id,
                    ChannelAccount.channel == "email",
                    ChannelAccount.enabled.is_(True),
                )
            )
            if mission
            else None
        )
        if mission is None or account is None:
            return False
        sub, token = service.subscribe(db=s, mission_id=mission.id, email=email, lang=lang)
        address, name = sub.email, mission.name
        config = EmailConfig.model_validate(account.config)
        secrets = EmailSecrets.model_validate(crypto.decrypt(ctx.settings, account.secret))
    if token is None:
        return True  # already confirmed: nothing to send
    ui = lang if lang in ("kk", "ru", "en") else "en"
    link = f"{ctx.settings.base_url}/news-confirm/{token}"
    send_mail(
        config,
        secrets,
        to=address,
        subject=gettext(ui, N_("Confirm your subscription")) + f": {name}",
        body=gettext(ui, N_("Open this link to receive the news by e-mail:"))
        + f"\n{link}\n\n"
        + gettext(ui, N_("If you did not ask for this, ignore this message.")),
        timeout=ctx.settings.http_timeout,
    )
    return True
