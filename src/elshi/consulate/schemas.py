"""The catalogue file format (what a mission edits) and the default catalogue."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


def _n(kk: str, ru: str, en: str) -> Names:
    return Names(kk=kk, ru=ru, en=en)


_PASSPORT = DocumentSpec(
    slug="passport", names=_n("Төлқұжат көшірмесі", "Копия паспорта", "Passport copy")
)
_PHOTO = DocumentSpec(slug="photo", names=_n("Фотосурет", "Фотография", "Photo"))
_STEPS = [
    _n("Өтінішті толтырыңыз", "Заполните заявление", "Fill in the application"),
    _n("Құжаттарды жүктеңіз", "Загрузите документы", "Upload the documents"),
    _n("Қабылдауға жазылыңыз", "Запишитесь на приём", "Book an appointment"),
    _n("Шешімді күтіңіз", "Дождитесь решения", "Wait for the decision"),
]
_FULL_NAME = FieldSpec(name="full_name", names=_n("Толық аты-жөні", "ФИО полностью", "Full name"))
_BIRTH = FieldSpec(
    name="birth_date", names=_n("Туған күні", "Дата рождения", "Date of birth"), type="date", max=10
)

DEFAULT_CATALOGUE: list[ServiceSpec] = [
    ServiceSpec(
        slug="visa",
        names=_n("Виза алуға өтініш", "Заявление на визу", "Visa application"),
        fields=[
            _FULL_NAME,
            _BIRTH,
            FieldSpec(
                name="passport_number",
                names=_n("Төлқұжат нөмірі", "Номер паспорта", "Passport number"),
                max=20,
            ),
            FieldSpec(
                name="purpose",
                names=_n("Сапар мақсаты", "Цель поездки", "Purpose of travel"),
                type="select",
                options=["tourism", "business", "study", "family"],
                max=20,
            ),
            FieldSpec(
                name="entry_date",
                names=_n("Келу күні", "Дата въезда", "Date of entry"),
                type="date",
                max=10,
            ),
            FieldSpec(
                name="notes",
                names=_n("Қосымша", "Дополнительно", "Notes"),
                type="textarea",
                required=False,
                max=2000,
            ),
        ],
        documents=[
            _PASSPORT,
            _PHOTO,
            DocumentSpec(
                slug="invitation",
                names=_n("Шақыру хат", "Приглашение", "Invitation letter"),
                required=False,
            ),
        ],
        steps=_STEPS,
        fee_cents=8000,
    ),
    ServiceSpec(
        slug="passport-renewal",
        names=_n("Төлқұжатты ауыстыру", "Замена паспорта", "Passport renewal"),
        fields=[_FULL_NAME, _BIRTH],
        documents=[_PASSPORT, _PHOTO],
        steps=_STEPS,
        fee_cents=5000,
    ),
    ServiceSpec(
        slug="certificate",
        names=_n("Анықтама", "Справка", "Certificate"),
        fields=[
            _FULL_NAME,
            FieldSpec(
                name="kind",
                names=_n("Анықтама түрі", "Вид справки", "Kind of certificate"),
                type="select",
                options=["residence", "no-criminal-record", "marital-status"],
                max=40,
            ),
        ],
        documents=[_PASSPORT],
        steps=_STEPS,
        fee_cents=2000,
        needs_appointment=False,
    ),
    ServiceSpec(
        slug="legalisation",
        names=_n("Заңдастыру / апостиль", "Легализация / апостиль", "Legalisation / apostille"),
        fields=[
            _FULL_NAME,
            FieldSpec(
                name="document_title",
                names=_n("Құжат атауы", "Название документа", "Document title"),
            ),
        ],
        documents=[
            DocumentSpec(
                slug="original", names=_n("Құжат көшірмесі", "Копия документа", "Document copy")
            )
        ],
        steps=_STEPS,
        fee_cents=3000,
    ),
    ServiceSpec(
        slug="return-certificate",
        names=_n("Қайтып оралу куәлігі", "Свидетельство на возвращение", "Return certificate"),
        fields=[
            _FULL_NAME,
            _BIRTH,
            FieldSpec(
                name="circumstances",
                names=_n("Не болды", "Что случилось", "What happened"),
                type="textarea",
                max=2000,
            ),
        ],
        documents=[_PHOTO],
        steps=_STEPS,
        fee_cents=0,
    ),
]


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
