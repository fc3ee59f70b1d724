"""Speak JSON shapes for the API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class StatementOut(BaseModel):
    """A statement's state (not its text)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    mission_id: int
    title: str
    status: str = Field(description="draft, submitted, returned, approved or archived.")
    urgent: bool
    required_approvals: int
    submitted_at: datetime | None
    approved_at: datetime | None
    scheduled_at: datetime | None
    schedule_tz: str | None
    topic_query: str | None
    narrative_id: int | None


class PublicationOut(BaseModel):
    """One language version on one channel account."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    statement_id: int
    account_id: int
    channel: str
    lang: str
    status: str = Field(description="pending, sending, sent, failed, unknown or deleted.")
    due_at: datetime
    attempts: int
    sent_at: datetime | None
    url: str | None
    error_kind: str | None = Field(
        description="expired_token, rate_limited, too_long, server_error, network, rejected, "
        "unsure or not_approved."
    )
    error: str | None
    retry_at: datetime | None


class ReachOut(BaseModel):
    """Engagement totals (views, reactions, reposts, replies)."""

    total: dict[str, int]
    by_lang: dict[str, dict[str, int]]
    by_channel: dict[str, dict[str, int]]
    audience: dict[str, int] = Field(
        default_factory=dict,
        description="Distinct accounts that replied, reposted or liked, by Listen actor type "
        "(unknown: not a Listen author or no type yet).",
    )
    audience_by_channel: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="The same, per channel."
    )
