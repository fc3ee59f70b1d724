"""Built-in enrichers, registered through the same hook a third-party package would use."""

from __future__ import annotations

from typing import ClassVar

from elshi.nlp.base import AnnotationIn, Enricher, PostText
from elshi.plugins import hookimpl


class LanguageEnricher(Enricher):
    """Language of each post (kk in Cyrillic or Latin, ru, en, zh, ar, ...); mixed get both."""

    slug: ClassVar[str] = "language"
    title: ClassVar[str] = "Language identification"
    version: ClassVar[str] = "1"
    sets_post_lang: ClassVar[bool] = True

    def enrich_batch(self, posts: list[PostText]) -> list[AnnotationIn]:
        """Detect the language of each post's title and text."""
        from elshi.nlp.language import detect_batch

        results = detect_batch([p.full_text for p in posts])
        return [
            AnnotationIn(
                post_id=p.id,
                label=r.lang,
                score=round(r.score, 4),
                value={
                    "script": r.script,
                    "mixed": r.mixed,
                    "features": r.features,
                    "declared": p.lang,
                },
            )
            for p, r in zip(posts, results, strict=True)
        ]


@hookimpl
def elshi_enrichers() -> list[type[Enricher]]:
    """Register the built-in enrichers."""
    return [LanguageEnricher]
