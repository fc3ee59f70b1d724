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


def post_language(post: PostText) -> str | None:
    """Return the post's declared language, else the language enricher's label."""
    detected = post.context.get("language", {}).get("label")
    if detected and "-" in detected:
        detected = detected.split("-")[0]
    return post.lang or detected


class SentimentEnricher(Enricher):
    """Negative, neutral or positive with a score for kk, ru and en, and the words behind it."""

    slug: ClassVar[str] = "sentiment"
    title: ClassVar[str] = "Sentiment"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("language",)

    def enrich_batch(self, posts: list[PostText]) -> list[AnnotationIn]:
        """Score the sentiment of each post in its language."""
        from elshi.nlp.sentiment import analyse_batch

        langs = [post_language(p) for p in posts]
        results = analyse_batch([p.full_text for p in posts], langs, explain=True)
        return [
            AnnotationIn(
                post_id=p.id,
                label=r.label,
                score=round(r.score, 4),
                value={
                    "lang": lang,
                    "probs": {k: round(v, 4) for k, v in r.probs.items()},
                    "evidence": [[w, round(c, 4)] for w, c in r.evidence[:8]],
                },
            )
            for p, r, lang in zip(posts, results, langs, strict=True)
        ]


class EntityEnricher(Enricher):
    """Countries, capitals, leaders, organisations in every script and case; names in kk text."""

    slug: ClassVar[str] = "entities"
    title: ClassVar[str] = "Entities"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("language",)

    def enrich_batch(self, posts: list[PostText]) -> list[AnnotationIn]:
        """Find the entities each post mentions; the label is the most mentioned one."""
        from elshi.nlp.entities import extract_batch

        found = extract_batch([p.full_text for p in posts], [post_language(p) for p in posts])
        out = []
        for p, entities in zip(posts, found, strict=True):
            ids = [e.id for e in entities]
            top = max(set(ids), key=lambda i: (ids.count(i), -ids.index(i))) if ids else None
            out.append(
                AnnotationIn(
                    post_id=p.id,
                    label=top,
                    score=float(len(set(ids))),
                    value={
                        "ids": sorted(set(ids)),
                        "mentions": [
                            {
                                "id": e.id,
                                "type": e.type,
                                "text": e.text,
                                "start": e.start,
                                "end": e.end,
                                "source": e.source,
                                "score": round(e.score, 3),
                                "why": e.features[:3],
                            }
                            for e in entities[:50]
                        ],
                    },
                )
            )
        return out


@hookimpl
def elshi_enrichers() -> list[type[Enricher]]:
    """Register the built-in enrichers."""
    return [LanguageEnricher, SentimentEnricher, EntityEnricher]
