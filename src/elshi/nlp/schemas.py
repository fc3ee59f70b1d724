"""Narrative and explanation API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from elshi.listen.schemas import PostOut


class TrendOut(BaseModel):
    """Why a narrative is emerging: new in the window, or growing against the windows before."""

    model_config = ConfigDict(from_attributes=True)

    reason: str = Field(description="new or growing")
    recent: int = Field(description="Posts in the window.")
    baseline: float = Field(description="Average posts per window in the windows before.")
    ratio: float = Field(description="recent / max(baseline, 1).")


class NarrativeOut(BaseModel):
    """A story: posts grouped across languages, labelled with its key terms."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    count: int = Field(description="Posts in the narrative (all missions).")
    first_seen: datetime | None
    last_seen: datetime | None
    langs: dict[str, int] = Field(description="Posts per language.")
    terms: list[str] = Field(description="Key terms, taking turns between languages.")
    terms_by_lang: dict[str, list[str]] = Field(description="Key terms per language.")
    emerging: TrendOut | None = None


class NarrativePage(BaseModel):
    """Narratives, most recently active first (emerging ones by growth)."""

    limit: int
    offset: int
    items: list[NarrativeOut]


class NarrativeDetail(NarrativeOut):
    """A narrative with a page of its member posts that the caller may see."""

    posts_total: int
    posts: list[PostOut]


class Explanation(BaseModel):
    """What drove each result of one post: words, gazetteer entries, model features."""

    post_id: int
    language: dict[str, Any] | None = None
    sentiment: dict[str, Any] | None = None
    entities: list[dict[str, Any]] = []
    stance: list[dict[str, Any]] = []
    narrative: dict[str, Any] | None = None
