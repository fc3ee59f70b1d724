"""The catalogue file format (what a mission edits) and the default catalogue."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

LANGS = ("kk", "ru", "en")


class Names(BaseModel):
    """A label in the three interface languages."""

    kk: str = Field(min_length=1, max_length=200, description="Kazakh.")
    ru: str = Field(min_length=1, max_length=200, description="Russian.")
    en: str = Field(min_length=1, max_length=200, description="English.")


class FieldSpec(BaseModel):
    """One field of a service's form."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="Form field name.")
    names: Names = Field(description="Label shown to the applicant.")
    type: Literal["text", "textarea", "date", "number", "select"] = Field(
        default="text", description="Input kind."
    )
    required: bool = Field(default=True, description="Needed before submitting.")
    max: int = Field(default=200, ge=1, le=5000, description="Longest answer, in characters.")
    options: list[str] = Field(default_factory=list, description="Choices of a select field.")


class DocumentSpec(BaseModel):
    """One document the applicant uploads."""

    slug: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="Document kind id.")
    names: Names = Field(description="Label shown to the applicant.")
    required: bool = Field(default=True, description="Needed before submitting.")


class ServiceSpec(BaseModel):
    """A service type as a mission defines it."""

    slug: str = Field(pattern=r"^[a-z][a-z0-9-]{0,63}$", description="Service id in URLs.")
    names: Names = Field(description="Service name.")
    fields: list[FieldSpec] = Field(default_factory=list, description="Form fields.")
    documents: list[DocumentSpec] = Field(default_factory=list, description="Documents.")
    steps: list[Names] = Field(default_factory=list, description="What happens, in order.")
    fee_cents: int = Field(default=0, ge=0, le=10_000_000, description="Fee in cents.")
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 currency.")
    needs_appointment: bool = Field(default=True, description="The applicant books a visit.")
    active: bool = Field(default=True, description="Offered to applicants.")

    @field_validator("fields")
    @classmethod
    def _unique_fields(cls, value: list[FieldSpec]) -> list[FieldSpec]:
        names = [f.name for f in value]
        if len(names) != len(set(names)):
            raise ValueError("field names must be unique")
        return value


#: What `elshi consulate seed` gives a mission (visa, passport, certificate, legalisation,
#: return), written in the file format of `elshi consulate import`.
DEFAULT_CATALOGUE: list[ServiceSpec] = TypeAdapter(list[ServiceSpec]).validate_json(
    (Path(__file__).parent / "default_catalogue.json").read_bytes()
)


# ---------------------------------------------------------------------------- JSON API


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class StayOut(_Out):
    """A registered stay abroad."""

    id: int
    mission_id: int
    country_code: str
    city: str
    arrive_on: date
    leave_on: date
    status: str = Field(description="active, cancelled or expired.")
    confirmed_at: datetime | None


class RequestSummaryOut(_Out):
    """A service request without its details."""

    id: int
    reference: str
    service: str = Field(description="Slug of the service type (see the mission's catalogue).")
    mission_id: int
    status: str = Field(
        description="draft, submitted, in_review, more_documents, approved or rejected."
    )
    created_at: datetime
    submitted_at: datetime | None
    updated_at: datetime
    decided_at: datetime | None


class DocumentOut(_Out):
    """An uploaded document (its content is downloaded from the pages)."""

    id: int
    kind: str
    filename: str
    content_type: str
    size: int
    created_at: datetime


class EventOut(_Out):
    """One step of a request's history: who did what, when."""

    at: datetime
    actor_kind: str
    actor_label: str
    action: str
    from_status: str | None
    to_status: str | None
    note: str


class MessageOut(_Out):
    """A message between the applicant and the consular section."""

    sender_kind: str = Field(description="citizen or staff.")
    sender_label: str
    body: str
    created_at: datetime


class AppointmentOut(BaseModel):
    """An appointment, with its time in UTC and in the mission's local time."""

    id: int
    request_id: int | None
    mission_id: int
    status: str = Field(description="booked, cancelled, attended or no_show.")
    starts_at: datetime = Field(description="Start, UTC.")
    local_start: datetime = Field(description="Start in the mission's time zone.")
    timezone: str = Field(description="The mission's IANA time zone.")
    minutes: int


class RequestOut(RequestSummaryOut):
    """A service request with its answers, documents, history, messages and appointments."""

    answers: dict[str, str]
    reason: str = Field(description="The reason given with a decision.")
    documents: list[DocumentOut]
    history: list[EventOut]
    messages: list[MessageOut]
    appointments: list[AppointmentOut]


class MeOut(BaseModel):
    """What the signed-in citizen sees on their page."""

    name: str
    email: str
    lang: str
    stays: list[StayOut]
    requests: list[RequestSummaryOut]
    appointments: list[AppointmentOut]


class QueueRowOut(_Out):
    """One line of the officers' queue (no personal data)."""

    id: int
    reference: str
    service: str
    status: str
    mission_id: int
    submitted_at: datetime | None
    updated_at: datetime
    assigned_to: int | None


class QueueOut(BaseModel):
    """A page of the officers' queue."""

    total: int
    page: int
    rows: list[QueueRowOut]


class StaffRequestOut(RequestOut):
    """A request as an officer sees it: with the applicant (the read is recorded)."""

    applicant_name: str
    applicant_email: str
