"""Listen API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from elshi.connectors.base import redact_source_config


class PostOut(BaseModel):
    """A stored post as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    platform: str
    external_id: str
    source_id: int | None
    url: str | None
    author_handle: str | None
    author_name: str | None
    title: str | None
    text: str
    lang: str | None
    published_at: datetime | None
    collected_at: datetime
    metrics: dict[str, Any]
    reply_to: str | None
    repost_of: str | None
    dup_of_id: int | None


class PostPage(BaseModel):
    """One page of search results."""

    total: int
    #: False when there are more matches than counted: the total is then a lower bound.
    total_exact: bool = True
    limit: int
    offset: int
    items: list[PostOut]


class SourceOut(BaseModel):
    """A source with its health; secret settings (tokens) are shown as "[redacted]"."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    connector: str
    name: str
    config: dict[str, Any]
    every_minutes: int | None
    enabled: bool
    health: str
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    failures: int
    next_run_at: datetime | None

    @model_validator(mode="after")
    def _redact(self) -> SourceOut:
        self.config = redact_source_config(self.connector, self.config)
        return self


class QuarantineOut(BaseModel):
    """A record that could not be stored."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    source_id: int | None
    connector: str
    origin: str
    location: str
    reason: str
    raw: str | None
    created_at: datetime


class AnnotationOut(BaseModel):
    """One enricher's result for a post, with what drove it (evidence, features, mentions)."""

    model_config = ConfigDict(from_attributes=True)

    enricher: str
    version: str
    label: str | None
    score: float | None
    value: dict[str, Any]
    created_at: datetime


class NarrativeRef(BaseModel):
    """The narrative a post belongs to."""

    id: int
    count: int
    terms: list[str]
    similarity: float | None = None


class PostDetail(PostOut):
    """A post with every enricher's annotation: language, sentiment, entities and why."""

    annotations: list[AnnotationOut]
    narrative: NarrativeRef | None = None
