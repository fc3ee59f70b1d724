"""The enricher contract: read a batch of posts, return annotations tagged with name and version."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from elshi.settings import Settings

T = TypeVar("T")


class ProcessWide(Generic[T]):
    """One object per process (a model, a gazetteer), built on first use and only once.

    Threads that ask for it while it is being built wait for that one build, so a heavy model
    is never loaded twice. `lock` also serves callers that guard related state with it.
    """

    def __init__(self, build: Callable[[], T] | None = None) -> None:
        self._build = build
        self._value: T | None = None
        self.lock = threading.Lock()

    def get(self, build: Callable[[], T] | None = None) -> T:
        """Return the object, building it (with `build`, else the default) the first time."""
        value = self._value
        if value is None:
            with self.lock:
                if self._value is None:
                    make = build or self._build
                    if make is None:
                        raise RuntimeError("nothing builds this process-wide object")
                    self._value = make()
                value = self._value
        return value

    def set(self, value: T) -> T:
        """Replace the object (a backend chosen by configuration) and return it."""
        with self.lock:
            self._value = value
        return value


@dataclass(slots=True)
class PostText:
    """What an enricher sees of a post."""

    id: int
    text: str
    title: str | None = None
    lang: str | None = None
    #: When the post was published (else collected); narratives count posts per hour with it.
    time: datetime | None = None
    #: Annotations already made in this run by enrichers that ran earlier (by enricher slug).
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def full_text(self) -> str:
        """Return title and text together."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(slots=True)
class AnnotationIn:
    """One enricher's result for one post."""

    post_id: int
    label: str | None
    score: float | None = None
    value: dict[str, Any] = field(default_factory=dict)


class Enricher(ABC):
    """Adds knowledge to posts: language, sentiment, entities, narratives."""

    slug: ClassVar[str]
    title: ClassVar[str]
    #: Bump when results change; `elshi enrich` re-runs stored posts annotated by older versions.
    version: ClassVar[str]
    #: Slugs of enrichers whose results this one reads from PostText.context.
    requires: ClassVar[tuple[str, ...]] = ()
    #: True when the label is a language code to store as the post's language if it has none.
    sets_post_lang: ClassVar[bool] = False
    #: True for a slower enricher that the queue runs as its own batched job after the others,
    #: so new posts get language, sentiment and entities without waiting for it.
    queued_apart: ClassVar[bool] = False
    #: The setting that names a Hugging Face model to use instead of the shipped one, if any.
    hf_model_setting: ClassVar[str] = ""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    @property
    def hf_model(self) -> str:
        """Return the Hugging Face model the settings name for this enricher ("": shipped)."""
        if self.settings is None or not self.hf_model_setting:
            return ""
        return str(getattr(self.settings, self.hf_model_setting))

    def prepare(self, posts: list[PostText]) -> None:
        """Compute what needs no stored state (embeddings), before begin() (default: nothing).

        The pipeline calls it outside any write transaction: on SQLite, begin() may take the
        database's one write lock, which every other writer (a sign-in) then waits for."""
        return None

    def begin(self, session: Session) -> None:
        """Load any state the enricher keeps in the database, before a batch (default: none)."""
        return None

    def finish(self, session: Session, results: list[AnnotationIn]) -> None:
        """Store that state with the batch's annotations, in the same transaction."""
        return None

    @abstractmethod
    def enrich_batch(self, posts: list[PostText]) -> list[AnnotationIn]:
        """Return annotations for a batch of posts; never raise for one bad post."""
