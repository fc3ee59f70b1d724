"""Approving a statement: submit, decide, and whether it may be published."""

from __future__ import annotations

from sqlalchemy.orm import Session

from elshi.accounts.service import PermissionDenied, Principal, authorize
from elshi.db import utcnow
from elshi.speak.models import (
    Approval,
    Statement,
)
from elshi.speak.service import (
    MAX_COMMENT,
    NotApproved,
    SpeakError,
    _audit,
    approvals_of,
    get_statement,
    versions_of,
)
from elshi.speak.writing import _editable, content_digest, content_snapshot
from elshi.web.i18n import N_

# ---------------------------------------------------------------------------- approval


def submit(*, db: Session, actor: Principal, statement_id: int) -> Statement:
    """Send a statement for approval; every translated version must be reviewed first."""
    st = get_statement(db=db, actor=actor, statement_id=statement_id)
    _editable(actor, st)
    if st.status not in ("draft", "returned"):
        raise SpeakError(N_("Only a draft or returned statement can be submitted."))
    versions = versions_of(db=db, statement_id=st.id)
    if not versions:
        raise SpeakError(N_("Write at least one language version first."))
    unreviewed = [lang for lang, v in versions.items() if v.source_lang and not v.reviewed_at]
    if unreviewed:
        raise SpeakError(
            N_("Mark these translations reviewed before submitting: %(langs)s."),
            langs=", ".join(unreviewed),
        )
    st.status = "submitted"
    st.submitted_by = actor.user_id
    st.submitted_at = utcnow()
    st.updated_at = st.submitted_at
    _audit(db, actor, "statement.submit", st, revision=st.revision)
    return st


def decide(
    *,
    db: Session,
    actor: Principal,
    statement_id: int,
    approve: bool,
    comment: str = "",
) -> Statement:
    """Approve a submitted statement, or return it to the drafter with comments.

    The approver must be someone other than whoever wrote and submitted it; an urgent
    statement needs two different approvers.
    """
    st = get_statement(db=db, actor=actor, statement_id=statement_id)
    authorize(actor, "speak.approve", mission_id=st.mission_id)
    if st.status != "submitted":
        raise SpeakError(N_("Only a submitted statement can be approved or returned."))
    if actor.user_id is not None and actor.user_id in (st.submitted_by, st.created_by):
        raise PermissionDenied("a different person must approve: you wrote or submitted it")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise SpeakError(N_("Comment: at most %(max)s characters."), max=MAX_COMMENT)
    if not approve and not comment:
        raise SpeakError(N_("Comment: say what to change when returning a statement."))
    current = [
        a
        for a in approvals_of(db=db, statement_id=st.id)
        if a.revision == st.revision and a.decision == "approve"
    ]
    if approve and any(a.user_id == actor.user_id for a in current):
        raise SpeakError(N_("You have approved this already; a second approver must approve too."))
    db.add(
        Approval(
            statement_id=st.id,
            revision=st.revision,
            user_id=actor.user_id,
            user_label=actor.label,
            decision="approve" if approve else "return",
            comment=comment,
            content=content_snapshot(db=db, statement_id=st.id) if approve else None,
        )
    )
    now = utcnow()
    st.updated_at = now
    if not approve:
        st.status = "returned"
        _audit(db, actor, "statement.return", st, revision=st.revision)
        return st
    _audit(db, actor, "statement.approve", st, revision=st.revision)
    if len(current) + 1 >= st.required_approvals:
        st.status = "approved"
        st.approved_at = now
        st.approved_revision = st.revision
        db.flush()
        st.approved_digest = content_digest(db=db, statement_id=st.id)
    return st


def last_approved(*, db: Session, statement: Statement) -> Approval | None:
    """Return the approval that completed the latest approved revision and kept its content
    (None when no revision was ever approved, e.g. a first version)."""
    approving: dict[int, list[Approval]] = {}
    for a in approvals_of(db=db, statement_id=statement.id):
        if a.decision == "approve":
            approving.setdefault(a.revision, []).append(a)
    for revision in sorted(approving, reverse=True):
        given = approving[revision]
        if len(given) >= statement.required_approvals and given[-1].content is not None:
            return given[-1]
    return None


def superseded(statement: Statement, approval: Approval) -> bool:
    """Return whether an approval was for content that has since been edited."""
    return approval.decision == "approve" and approval.revision != statement.revision


def approval_minutes(st: Statement) -> float | None:
    """Return how long approval took, in minutes (None until approved)."""
    if st.submitted_at is None or st.approved_at is None:
        return None
    return round((st.approved_at - st.submitted_at).total_seconds() / 60, 1)


def assert_publishable(*, db: Session, statement: Statement) -> None:
    """Raise NotApproved unless the statement is approved exactly as it stands now."""
    if (
        statement.status != "approved"
        or statement.approved_revision != statement.revision
        or not statement.approved_digest
    ):
        raise NotApproved(f"statement {statement.id} is {statement.status}, not approved")
    if content_digest(db=db, statement_id=statement.id) != statement.approved_digest:
        raise NotApproved(f"statement {statement.id} changed after it was approved")


__all__ = [
    "approval_minutes",
    "assert_publishable",
    "decide",
    "last_approved",
    "submit",
    "superseded",
]
