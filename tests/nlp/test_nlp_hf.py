"""Every enricher runs through a named Hugging Face model: tiny BERT models built here, offline.

The models' classifier weights are zeroed and their biases set, so what each must answer is
known: the language model always says "ru", the sentiment model always "positive", the token
model tags every word as a person. Skipped only where torch is missing on a user's machine;
CI (ELSHI_TEST_REQUIRE_SERVICES=1) installs it and fails instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from elshi.db import Database
from elshi.listen.models import Annotation, Post
from elshi.nlp import hf
from elshi.nlp.pipeline import enrich_posts
from tests.conftest import service_missing, tiny_bert

TEXTS = {
    "ru": "Россия и Казахстан подписали соглашение о торговле",
    "kk": "Қазақстан мен Ресей сауда келісіміне қол қойды",
    "en": "Kazakhstan and the UN signed a trade deal",
    "empty": "",
    "emoji": "🙂🙂🎉",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Build and save a tiny tokenizer and three tiny BERT classifiers; return their folders."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        service_missing("torch and transformers (pip install 'elshi[hf]')", exc)
        raise
    root = tmp_path_factory.mktemp("hf")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += sorted({ch for text in TEXTS.values() for ch in text.lower() if not ch.isspace()})
    torch.manual_seed(0)

    def build(kind: str, labels: list[str], favourite: str) -> str:
        tokenizer, config = tiny_bert(
            root,
            vocab,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={lab: i for i, lab in enumerate(labels)},
        )
        cls = (
            transformers.BertForTokenClassification
            if kind == "token"
            else transformers.BertForSequenceClassification
        )
        model = cls(config)
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.zero_()
            model.classifier.bias[labels.index(favourite)] = 4.0
        folder = root / kind / favourite
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return str(folder)

    return {
        "language": build("seq", ["kk", "ru", "en"], "ru"),
        "sentiment": build("seq", ["negative", "neutral", "positive"], "positive"),
        "entities": build("token", ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"], "B-PER"),
    }


def _store(db: Database) -> None:
    with db.session() as s:
        s.add_all(
            Post(platform="test", external_id=k, connector="t", text=v, metrics={}, extra={})
            for k, v in TEXTS.items()
        )


def _annotations(db: Database, enricher: str) -> dict[str, Annotation]:
    with db.session() as s:
        return {
            ext: a
            for ext, a in s.execute(
                select(Post.external_id, Annotation)
                .join(Annotation, Annotation.post_id == Post.id)
                .where(Annotation.enricher == enricher)
            )
        }


def _run(db: Database, slugs: list[str], **models: str) -> None:
    """Store the texts and run these enrichers with these models; no post may fail."""
    _store(db)
    db.settings = db.settings.model_copy(update=models)
    assert enrich_posts(db, slugs=slugs)["errors"] == 0


def test_language_enricher_through_a_named_model(db: Database, tiny: dict[str, str]) -> None:
    _run(db, ["language"], language_hf_model=tiny["language"])
    got = _annotations(db, "language")
    for ext in ("ru", "kk", "en"):
        assert got[ext].label == "ru" and got[ext].score > 0.9
        assert got[ext].value["model"] == tiny["language"]
        assert got[ext].value["features"][0].startswith(f"model {tiny['language']}: ru")
    for ext in ("empty", "emoji"):
        assert got[ext].label == "und"


def test_sentiment_and_stance_through_a_named_model(db: Database, tiny: dict[str, str]) -> None:
    _run(
        db,
        ["sentiment", "stance"],
        sentiment_hf_model=tiny["sentiment"],
        stance_hf_model=tiny["sentiment"],
    )
    sentiment = _annotations(db, "sentiment")
    for ext in ("ru", "kk", "en"):
        a = sentiment[ext]
        assert a.label == "positive" and a.value["model"] == tiny["sentiment"]
        assert a.score == pytest.approx(a.value["probs"]["positive"] - a.value["probs"]["negative"])
        assert sum(a.value["probs"].values()) == pytest.approx(1.0, abs=1e-3)
    assert sentiment["empty"].label == "neutral" and sentiment["empty"].score == 0
    stance = _annotations(db, "stance")
    targets = {t["id"]: t for t in stance["ru"].value["targets"]}
    assert {"country:RU", "country:KZ"} <= set(targets)
    assert all(t["label"] == "positive" for t in targets.values())
    assert stance["ru"].value["model"] == tiny["sentiment"]
    assert stance["empty"].value["targets"] == []


def test_entities_through_a_named_model(db: Database, tiny: dict[str, str]) -> None:
    _run(db, ["entities"], entities_hf_model=tiny["entities"])
    got = _annotations(db, "entities")
    for ext in ("ru", "kk", "en"):
        mentions = got[ext].value["mentions"]
        text = TEXTS[ext]
        assert "country:KZ" in got[ext].value["ids"], "the gazetteer still runs"
        found = [m for m in mentions if m["source"] == "hf"]
        assert found, ext
        for m in mentions:
            assert text[m["start"] : m["end"]] == m["text"]
        for m in found:
            assert m["type"] == "person" and m["id"].startswith("ner:person:")
            assert m["why"][0].startswith(f"model {tiny['entities']}: PER")
            # No model span overlaps a gazetteer match.
            assert not any(
                g["source"] == "gazetteer" and g["start"] < m["end"] and m["start"] < g["end"]
                for g in mentions
            )
    assert got["empty"].value["mentions"] == []


def test_occlusion_explains_which_words_moved_the_score(tiny: dict[str, str]) -> None:
    label, score, _, evidence = hf.sentiment(tiny["sentiment"], [TEXTS["en"]])[0]
    assert label == "positive" and -1 <= score <= 1
    # The classifier ignores the text (zero weights), so no word moves the score.
    assert evidence == []


def test_a_missing_model_says_what_is_missing(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    with pytest.raises(hf.HFUnavailable, match="offline"):
        hf.classify(str(tmp_path / "nothing-here"), ["x"])


def test_label_mapping() -> None:
    assert [hf.language_code(x) for x in ("kk", "__label__ru", "en_XX", "Russian")] == [
        "kk",
        "ru",
        "en",
        "ru",
    ]
    assert hf.sentiment_index(["NEGATIVE", "POSITIVE"]) == [0, -1, 1]
    assert hf.sentiment_index(["LABEL_0", "LABEL_1", "LABEL_2"]) == [0, 1, 2]
    assert hf.sentiment_index(["pos", "neg", "neu"]) == [1, 2, 0]
