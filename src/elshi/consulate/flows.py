"""Multi-step side effects of the e-consulate: sign-up and sign-in, e-mails, uploads, purges."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from elshi import notify
from elshi.accounts import service as accounts
from elshi.accounts import signin
from elshi.accounts.service import LoginPolicy, Principal
from elshi.accounts.signin import SignIn
from elshi.consulate import documents, service
from elshi.consulate.models import Citizen, Document, Message, ServiceRequest, ServiceType
from elshi.consulate.scan import ScannerUnavailable
from elshi.plugins import pick_scanner
from elshi.settings import Settings
from elshi.web import i18n
from elshi.web.i18n import N_

log = logging.getLogger(__name__)

VERIFY_LIFETIME = timedelta(days=2)
RESET_LIFETIME = timedelta(hours=1)

VERIFY_SUBJECT = N_("Confirm your e-mail for the e-consulate")
VERIFY_BODY = N_(
    "Hello %(name)s,\n\nopen this link to confirm your e-mail address and start using "
    "the e-consulate:\n\n%(link)s\n\nThe link works for 48 hours. If you did not sign up, "
    "ignore this message."
)
TAKEN_SUBJECT = N_("Someone tried to sign up with your e-mail")
TAKEN_BODY = N_(
    "Hello %(name)s,\n\nsomeone asked to open an e-consulate account with this e-mail address, "
    "which already has an account. If it was you, sign in:\n\n%(login)s\n\n"
    "If you forgot your password, choose a new one:\n\n%(reset)s\n\n"
    "If it was not you, ignore this message; your account stays as it is."
)
RESET_SUBJECT = N_("Reset your e-consulate password")
RESET_BODY = N_(
    "Hello %(name)s,\n\nopen this link to choose a new password:\n\n%(link)s\n\n"
    "The link works for one hour. If you did not ask for it, ignore this message; "
    "your password stays as it is."
)
STATUS_SUBJECT = N_("Your request %(reference)s: %(status)s")
STATUS_BODY = N_(
    "Hello %(name)s,\n\nthe status of your request %(reference)s (%(service)s) is now: "
    "%(status)s.\n%(note)s\nSee the details: %(link)s"
)
MESSAGE_SUBJECT = N_("New message about your request %(reference)s")
MESSAGE_BODY = N_(
    "Hello %(name)s,\n\nthe consular section wrote to you about request %(reference)s. "
    "Read it here: %(link)s"
)


STAY_SUBJECT = N_("Is your stay in %(city)s still right?")
STAY_BODY = N_(
    "Hello %(name)s,\n\nyou registered a stay in %(city)s from %(arrive)s to %(leave)s with the "
    "consulate. Please confirm that it is still right, or end the registration if your plans "
    "changed, so that the consulate can reach you in an emergency:\n\n%(link)s\n\n"
    "The registration ends by itself after %(leave)s."
)


def _t(citizen: Citizen, message: str, **params: Any) -> str:
    text = i18n.gettext(citizen.lang, message)
    return text % params if params else text


def _link(settings: Settings, path: str, **query: str) -> str:
    return settings.base_url + path + ("?" + urlencode(query) if query else "")


# ---------------------------------------------------------------------------- delivery


def _email(
    db: Session, to: str, subject: str, text: str, *, mission_id: int | None = None
) -> notify.Message:
    """Put an e-mail in the outbox, in the transaction of the change it tells about; it is
    sent after the commit (elshi.notify.outbox). `mission_id`: whose admins see it there."""
    message = notify.Message(medium="email", to=to, subject=subject, text=text)
    row = notify.enqueue(db, message, mission_id=mission_id)
    return replace(message, key=row.key)


# ---------------------------------------------------------------------------- accounts


def _audit_by_citizen(db: Session, action: str, citizen_id: int | None, **more: Any) -> None:
    """Audit what a citizen did (or tried) on their own account."""
    accounts.audit(
        db=db,
        action=action,
        object_type="citizen",
        object_id=citizen_id,
        actor_label="citizen",
        **more,
    )


def sign_up(
    *,
    db: Session,
    settings: Settings,
    email: str,
    password: str,
    name: str,
    phone: str = "",
    lang: str = "en",
) -> tuple[Citizen | None, notify.Message | None]:
    """Create an unverified account and the e-mail that verifies it.

    When the e-mail already has an account, nothing is created and the page answers the same
    (no one learns which addresses have accounts): the owner is e-mailed a note instead, or a
    new confirmation link when they never confirmed. Returns (the new citizen or None, e-mail).
    """
    try:
        citizen = service.create_citizen(
            db=db, email=email, password=password, name=name, phone=phone, lang=lang
        )
    except service.EmailTaken:
        accounts.hash_password(password)  # the work a new account costs: the same answer time
        return None, _taken_email(db=db, settings=settings, email=email)
    _audit_by_citizen(db, "citizen.sign_up", citizen.id)
    return citizen, verification_email(db=db, settings=settings, citizen=citizen)


def _taken_email(*, db: Session, settings: Settings, email: str) -> notify.Message | None:
    owner = service.get_citizen_by_email(db=db, email=email)
    if owner is None or not owner.is_active:
        return None
    _audit_by_citizen(db, "citizen.sign_up_taken", owner.id)
    if owner.email_verified_at is None:
        return verification_email(db=db, settings=settings, citizen=owner)
    return _email(
        db,
        owner.email,
        _t(owner, TAKEN_SUBJECT),
        _t(
            owner,
            TAKEN_BODY,
            name=owner.name,
            login=_link(settings, "/consulate/login"),
            reset=_link(settings, "/consulate/reset"),
        ),
    )


def _link_email(
    db: Session,
    settings: Settings,
    citizen: Citizen,
    purpose: str,
    lifetime: timedelta,
    subject: str,
    body: str,
) -> notify.Message:
    """Issue a one-time link (/consulate/<purpose>) and return the e-mail that carries it."""
    token = service.issue_token(db=db, citizen_id=citizen.id, purpose=purpose, lifetime=lifetime)
    link = _link(settings, f"/consulate/{purpose}", token=token)
    return _email(
        db, citizen.email, _t(citizen, subject), _t(citizen, body, name=citizen.name, link=link)
    )


def verification_email(*, db: Session, settings: Settings, citizen: Citizen) -> notify.Message:
    """Issue a fresh verification link and return the e-mail carrying it."""
    return _link_email(
        db, settings, citizen, "verify", VERIFY_LIFETIME, VERIFY_SUBJECT, VERIFY_BODY
    )


def verify_email(*, db: Session, token: str) -> Citizen | None:
    """Spend a verification link; return the now verified citizen or None."""
    citizen = service.use_token(db=db, token=token, purpose="verify")
    if citizen is not None:
        citizen.email_verified_at = citizen.email_verified_at or accounts.utcnow()
        accounts.audit(db=db, action="citizen.verify", object_type="citizen", object_id=citizen.id)
    return citizen


def request_reset(*, db: Session, settings: Settings, email: str) -> notify.Message | None:
    """Return a reset e-mail when the account exists (the page says the same either way)."""
    citizen = service.get_citizen_by_email(db=db, email=email)
    if citizen is None or not citizen.is_active:
        return None
    accounts.audit(db=db, action="citizen.reset_asked", object_type="citizen", object_id=citizen.id)
    return _link_email(db, settings, citizen, "reset", RESET_LIFETIME, RESET_SUBJECT, RESET_BODY)


def reset_password(*, db: Session, token: str, password: str) -> Citizen | None:
    """Set a new password with a reset link (the caller rolls back if the password is refused)."""
    citizen = service.use_token(db=db, token=token, purpose="reset")
    if citizen is None:
        return None
    service.set_password(db=db, citizen=citizen, password=password)
    # The link arrived by e-mail, so following it also proves the address.
    citizen.email_verified_at = citizen.email_verified_at or accounts.utcnow()
    accounts.audit(db=db, action="citizen.reset", object_type="citizen", object_id=citizen.id)
    return citizen


class CitizenKind(signin.AccountKind[Citizen]):
    """Citizens: the citizen_session table, "citizen.*" audit events, e-mail to be verified.

    Refusals are not audited; a lock reached at the code step makes it expire.
    """

    audit_refusals = False

    def find(self, db: Session, email: str) -> Citizen | None:
        return service.get_citizen_by_email(db=db, email=email)

    def get(self, db: Session, account_id: int) -> Citizen | None:
        return db.get(Citizen, account_id)

    def attempt_owner(self, account_id: int | None) -> tuple[int | None, int | None]:
        return None, account_id

    def accept(self, account: Citizen, password: str) -> str:
        return "unverified" if account.email_verified_at is None else "ok"

    def create_session(self, db: Session, new: signin.NewSession) -> str:
        return service.create_session(
            db=db, citizen_id=new.account_id, lifetime=new.lifetime, mfa_pending=new.mfa_pending
        )

    def pending_owner(self, db: Session, key: str) -> int | None:
        row = service.find_session(db=db, key=key)
        return row.citizen_id if row is not None and row.mfa_pending else None

    def end_session(self, db: Session, key: str) -> None:
        service.end_session(db=db, key=key)

    def failed(
        self, db: Session, *, account: Citizen | None, email: str, ip: str, reason: str
    ) -> None:
        log.warning("citizen sign-in failed (%s) from %s", reason, ip)
        _audit_by_citizen(
            db,
            "citizen.sign_in_failed",
            account.id if account else None,
            detail={"reason": reason, "ip": ip},
        )

    def signed_in(self, db: Session, *, account: Citizen, ip: str, mfa: bool) -> None:
        account.last_login_at = accounts.utcnow()
        _audit_by_citizen(db, "citizen.sign_in", account.id, detail={"ip": ip})


CITIZENS = CitizenKind()


def sign_in(
    *, db: Session, email: str, password: str, ip: str, policy: LoginPolicy, lifetime: timedelta
) -> SignIn:
    """Check e-mail and password (blocked per address, locked per account and address)."""
    attempt = signin.Attempt(ip, None, policy, lifetime)
    return signin.sign_in(CITIZENS, db, attempt, email=email, password=password)


def sign_in_code(
    *, db: Session, pending_key: str, code: str, ip: str, policy: LoginPolicy, lifetime: timedelta
) -> SignIn:
    """Check the authenticator code of a pending sign-in."""
    attempt = signin.Attempt(ip, None, policy, lifetime)
    return signin.sign_in_code(CITIZENS, db, attempt, pending_key=pending_key, code=code)


def start_totp() -> str:
    """Return a new TOTP secret for the citizen's app; it is kept only once a code matches."""
    return accounts.new_totp_secret()


def enable_totp(*, db: Session, citizen_id: int, secret: str, code: str) -> bool:
    """Turn on TOTP once the citizen proves their app shows the right code."""
    citizen = service.get_citizen(db=db, citizen_id=citizen_id)
    probe = Citizen(totp_secret=secret, totp_last_step=None, locked_until=None)
    if not accounts.verify_totp(user=probe, code=code):
        return False
    citizen.totp_secret = secret
    citizen.totp_last_step = probe.totp_last_step
    accounts.audit(db=db, action="citizen.totp_enable", object_type="citizen", object_id=citizen.id)
    return True


# ---------------------------------------------------------------------------- requests


def status_email(
    *, db: Session, settings: Settings, request: ServiceRequest, note: str = ""
) -> notify.Message:
    """Return the e-mail telling the applicant their request's new status."""
    citizen = service.get_citizen(db=db, citizen_id=request.citizen_id)
    kind = db.get(ServiceType, request.service_type_id)
    status = _t(citizen, service.STATUS_NAMES[request.status])
    return _email(
        db,
        citizen.email,
        _t(citizen, STATUS_SUBJECT, reference=request.reference, status=status),
        _t(
            citizen,
            STATUS_BODY,
            name=citizen.name,
            reference=request.reference,
            service=(kind.names.get(citizen.lang) if kind else "") or "",
            status=status,
            note=f"\n{note}\n" if note else "",
            link=_link(settings, f"/consulate/requests/{request.id}"),
        ),
        mission_id=request.mission_id,
    )


def submit_request(
    *, db: Session, settings: Settings, citizen_id: int, request_id: int
) -> notify.Message:
    """Submit a request and return the confirmation e-mail."""
    request = service.submit(db=db, citizen_id=citizen_id, request_id=request_id)
    return status_email(db=db, settings=settings, request=request)


def claim_request(
    *, db: Session, settings: Settings, actor: Principal, request_id: int
) -> notify.Message:
    """Take a request into review and tell the applicant."""
    request = service.claim(db=db, actor=actor, request_id=request_id)
    return status_email(db=db, settings=settings, request=request)


def ask_for_documents(
    *, db: Session, settings: Settings, actor: Principal, request_id: int, note: str
) -> notify.Message:
    """Ask the applicant for more documents; the e-mail carries the officer's note."""
    request = service.ask_documents(db=db, actor=actor, request_id=request_id, note=note)
    return status_email(db=db, settings=settings, request=request, note=note.strip())


def decide_request(
    *,
    db: Session,
    settings: Settings,
    actor: Principal,
    request_id: int,
    approve: bool,
    reason: str,
) -> notify.Message:
    """Approve or reject a request and tell the applicant why."""
    request = service.decide(
        db=db, actor=actor, request_id=request_id, approve=approve, reason=reason
    )
    return status_email(db=db, settings=settings, request=request, note=request.reason)


def staff_message(
    *, db: Session, settings: Settings, actor: Principal, request_id: int, body: str
) -> tuple[Message, notify.Message]:
    """Write to the applicant of a request; the e-mail only says that there is a message."""
    request = service.staff_request(db=db, actor=actor, request_id=request_id, action="message")
    if not actor.can("consulate.act", request.mission_id):
        raise accounts.PermissionDenied("consulate.act: needs role consular or admin")
    row = service.post_message(
        db=db,
        request=request,
        kind="staff",
        sender_id=actor.user_id,
        label=actor.name or actor.label,
        body=body,
    )
    citizen = service.get_citizen(db=db, citizen_id=request.citizen_id)
    email = _email(
        db,
        citizen.email,
        _t(citizen, MESSAGE_SUBJECT, reference=request.reference),
        _t(
            citizen,
            MESSAGE_BODY,
            name=citizen.name,
            reference=request.reference,
            link=_link(settings, f"/consulate/requests/{request.id}"),
        ),
        mission_id=request.mission_id,
    )
    return row, email


# ---------------------------------------------------------------------------- documents


def upload_document(
    *,
    db: Session,
    settings: Settings,
    citizen_id: int,
    request_id: int,
    kind: str,
    filename: str,
    data: bytes,
) -> Document:
    """Check, scan and store one document and commit its row; on any failure keep nothing."""
    request = service.citizen_request(db=db, citizen_id=citizen_id, request_id=request_id)
    service._editable(request)
    service_type = db.get(ServiceType, request.service_type_id)
    assert service_type is not None
    if kind not in {d["slug"] for d in service_type.documents}:
        raise service.Invalid(service.Problem("kind", documents.BAD_KIND))
    if len(service.documents_of(db=db, request_id=request.id)) >= settings.upload_max_per_request:
        raise service.Invalid(
            service.Problem("file", documents.TOO_MANY, {"n": settings.upload_max_per_request})
        )
    checked = documents.check_upload(
        data=data, filename=filename, max_bytes=int(settings.upload_max_mb * 1_000_000)
    )
    scanner = pick_scanner(settings)
    try:
        verdict = scanner.scan(checked.data)
    except ScannerUnavailable as exc:
        log.error("upload refused: %s", exc)
        raise service.Invalid(service.Problem("file", documents.NO_SCANNER)) from None
    if not verdict.clean:
        accounts.audit(
            db=db,
            action="consulate.upload_infected",
            object_type="service_request",
            object_id=request.id,
            detail={"scanner": scanner.slug, "found": verdict.detail},
        )
        db.commit()
        raise service.Invalid(service.Problem("file", documents.INFECTED))
    root = settings.uploads_path
    key = documents.store(root, checked.data)
    try:
        row = Document(
            request_id=request.id,
            citizen_id=citizen_id,
            kind=kind,
            filename=checked.filename,
            content_type=checked.content_type,
            size=len(checked.data),
            sha256=checked.sha256,
            storage_key=key,
            scanner=scanner.slug,
        )
        db.add(row)
        request.updated_at = accounts.utcnow()
        db.flush()
        db.commit()
    except BaseException:
        db.rollback()
        documents.remove(root, [key])
        raise
    return row


def delete_document(*, db: Session, settings: Settings, citizen_id: int, document_id: int) -> None:
    """Remove one of the citizen's documents from a request they can still edit."""
    row = service.citizen_document(db=db, citizen_id=citizen_id, document_id=document_id)
    request = service.citizen_request(db=db, citizen_id=citizen_id, request_id=row.request_id)
    service._editable(request)
    key = row.storage_key
    db.delete(row)
    db.commit()
    documents.remove(settings.uploads_path, [key])


# ---------------------------------------------------------------------------- retention


def retention(settings: Settings) -> service.Retention:
    """Return the retention periods from the settings."""
    return service.Retention(
        registration=settings.retention_registration_days,
        request=settings.retention_request_days,
        document=settings.retention_document_days,
        draft=settings.retention_draft_days,
        access_log=settings.retention_access_log_days,
        unverified=settings.retention_unverified_days,
    )


def remind_stays(*, db: Session, settings: Settings) -> list[notify.Message]:
    """Mark the stays due a reminder as reminded and put the e-mails asking to confirm them
    in the outbox; return them.

    Both are stored by the caller's commit: a stay is never reminded twice for the same
    reason, and its e-mail is sent (and retried) from the outbox.
    """
    now = accounts.utcnow()
    rows = service.stays_to_remind(
        db=db,
        ending_days=settings.stay_reminder_ending_days,
        unconfirmed_days=settings.stay_reminder_unconfirmed_days,
        now=now,
    )
    emails = []
    for row in rows:
        citizen = db.get(Citizen, row.citizen_id)
        if citizen is None or not citizen.is_active:
            continue
        row.reminded_at = now
        values = {"city": row.city, "arrive": row.arrive_on.isoformat()}
        emails.append(
            _email(
                db,
                citizen.email,
                _t(citizen, STAY_SUBJECT, **values),
                _t(
                    citizen,
                    STAY_BODY,
                    name=citizen.name,
                    leave=row.leave_on.isoformat(),
                    link=_link(settings, "/consulate/home") + "#stays",
                    **values,
                ),
                mission_id=row.mission_id,
            )
        )
    db.flush()
    return emails


def purge_expired(*, db: Session, settings: Settings) -> dict[str, int]:
    """Delete what is past its retention period, then the stored files of removed documents."""
    report = service.purge(db=db, retention=retention(settings))
    accounts.audit(
        db=db, action="consulate.purge", object_type="retention", detail=dict(report.counts)
    )
    db.commit()
    report.counts["files"] = documents.remove(settings.uploads_path, report.storage_keys)
    return report.counts
