"""Sentiment and stance: shipped models, explanations, targets, bad input, validation scores."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from elshi.nlp.sentiment import (
    LABELS,
    MAX_CHARS,
    Doc,
    LinearModel,
    analyse,
    analyse_batch,
    load_model,
    models_dir,
    tokenize,
)
from elshi.nlp.stance import find_mentions, stance

ROOT = Path(__file__).resolve().parents[2]


def train_script() -> ModuleType:
    """Import scripts/train_sentiment.py (its data readers, trainer and metrics)."""
    name = "elshi_train_sentiment"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "train_sentiment.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["sentiment-kk", "sentiment-ru", "stance-ru"])
def test_shipped_models_load_and_are_small(name: str) -> None:
    path = Path(str(models_dir() / f"{name}.npz"))
    assert path.stat().st_size < 3_000_000
    model = load_model(name)
    assert model.classes == list(LABELS)
    assert model.n_features > 10_000
    assert model.coef.shape == (3, model.n_features)
    assert np.isfinite(model.coef).all() and np.isfinite(model.idf).all()
    assert model.meta["validation"]


CLEAR = [
    ("kk", "Керемет қосымша, маған қатты ұнады! Авторларға үлкен рахмет", "positive"),
    ("kk", "Өте жаман қосымша, ештеңе жұмыс істемейді, ақшаны ұрлайды", "negative"),
    ("kk", "Jaqsy, keremet oiyn, rahmet!", "positive"),
    ("ru", "Страны подписали важное соглашение о сотрудничестве и дружбе", "positive"),
    ("ru", "Теракт унес жизни десятков людей, власти осудили жестокое нападение", "negative"),
    ("en", "What a wonderful, friendly and helpful embassy team. Thank you!", "positive"),
    ("en", "Terrible service, rude staff, a complete disaster.", "negative"),
]


@pytest.mark.parametrize(("lang", "text", "expected"), CLEAR)
def test_clear_examples(lang: str, text: str, expected: str) -> None:
    result = analyse(text, lang)
    assert result.label == expected, result
    assert (result.score > 0) == (expected == "positive")
    assert -1.0 <= result.score <= 1.0
    assert set(result.probs) == set(LABELS)
    assert sum(result.probs.values()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(("lang", "text", "expected"), CLEAR)
def test_evidence_lists_words_of_the_text(lang: str, text: str, expected: str) -> None:
    result = analyse(text, lang)
    assert result.evidence, result
    words = {t.text for t in tokenize(text)} | set(text.lower().split())
    for unit, contribution in result.evidence:
        assert all(part in words for part in unit.split()), (unit, words)
        assert contribution != 0.0
    # The strongest piece of evidence points the way of the verdict.
    strongest = max(result.evidence, key=lambda kv: abs(kv[1]))[1]
    assert (strongest > 0) == (expected == "positive")


def test_evidence_is_the_model_arithmetic() -> None:
    model = load_model("sentiment-kk")
    doc = Doc(tokenize("Керемет кітап, бірақ дыбысы нашар"))
    batch = model.vectorize([doc])
    logits = model.logits(batch)[0]
    margin = logits[2] - logits[0] - (model.intercept[2] - model.intercept[0])
    assert model.unit_contributions(batch).sum() == pytest.approx(margin, abs=1e-9)


STANCE_CASES = [
    ("ru", "Посол поблагодарил Казахстан за помощь, однако осудил действия России.",
     "Казахстан", "Россия"),
    ("kk", "Министр Қазақстанның табысын жоғары бағалады, бірақ Ресейдің әрекетін айыптады.",
     "Қазақстан", "Ресей"),
    ("en", "The minister praised Kazakhstan but criticised Russia.", "Kazakhstan", "Russia"),
]  # fmt: skip


@pytest.mark.parametrize(("lang", "text", "liked", "disliked"), STANCE_CASES)
def test_stance_is_about_the_target_not_the_post(
    lang: str, text: str, liked: str, disliked: str
) -> None:
    post = analyse(text, lang)
    good = stance(text, liked, lang)
    bad = stance(text, disliked, lang)
    assert good.label == "positive", good
    assert bad.label == "negative", bad
    assert good.score > 0 > bad.score
    # One post, two opposite stances: at least one differs from the post's own sentiment.
    assert post.label != good.label or post.label != bad.label
    assert good.mentions == bad.mentions == 1
    assert good.evidence and bad.evidence


def test_stance_language_is_guessed() -> None:
    text = STANCE_CASES[0][1]
    assert stance(text, "Россия").label == stance(text, "Россия", "ru").label


@pytest.mark.parametrize(
    ("text", "target", "found"),
    [
        ("Делегация Казахстана прибыла; визит укрепит связи с Казахстаном.", "Казахстан",
         ["Казахстана", "Казахстаном"]),
        ("Қазақстанның елшісі Қазақстанда өткен форумға қатысты.", "Қазақстан",
         ["Қазақстанның", "Қазақстанда"]),
        ("Казакстаннын елшиси келди.", "Қазақстан", ["Казакстаннын"]),
        ("Переговоры России и Китая о России.", "Россия", ["России", "России"]),
        ("Ресейге барды, Ресейдің елшісі", "Ресей", ["Ресейге", "Ресейдің"]),
        ("Kazakhstan's envoy met Kazakhstan officials.", "Kazakhstan",
         ["Kazakhstan's", "Kazakhstan"]),
        ("Встреча в Европейском союзе и Европейского союза", "Европейский союз",
         ["Европейском союзе", "Европейского союза"]),
        ("Встреча с Китаем.", ["КНР", "Китай"], ["Китаем"]),
        ("Минск и Москва", "Казахстан", []),
    ],
)  # fmt: skip
def test_target_found_across_case_endings(
    text: str, target: str | list[str], found: list[str]
) -> None:
    tokens = tokenize(text)
    spans = find_mentions(tokens, target)
    assert [text[tokens[a].start : tokens[b].end] for a, b in spans] == found


def test_target_not_mentioned_is_none() -> None:
    result = stance("Министр похвалил Казахстан.", "Китай", "ru")
    assert (result.label, result.score, result.evidence, result.mentions) == ("none", 0.0, [], 0)


BAD_INPUT: list[object] = [
    "",
    "   \n\t ",
    "😀😡🇰🇿👍",
    "…!!! ??? ,,, ---",
    "Керемет! " * (1_000_000 // 9),
    b"\xff\xfe\xd0\x9a\xd0\xb0\xc3(\xa0\xa1 broken \xe2\x82",
    "lone surrogate \udcff here",
    "\x00\x01\x02 control",
    None,
    12345,
]


@pytest.mark.parametrize("lang", ["kk", "ru", "en", "de", "", None, "kk-Latn", "xx_YY"])
@pytest.mark.parametrize("text", BAD_INPUT, ids=lambda v: repr(v)[:20])
def test_bad_input_never_raises(text: object, lang: str | None) -> None:
    result = analyse(text, lang)  # type: ignore[arg-type]
    assert result.label in LABELS
    assert -1.0 <= result.score <= 1.0
    found = stance(text, "Қазақстан", lang)  # type: ignore[arg-type]
    assert found.label in (*LABELS, "none")


def test_unknown_language_is_neutral() -> None:
    result = analyse("Das ist eine wunderbare Nachricht!", "de")
    assert (result.label, result.score, result.evidence) == ("neutral", 0.0, [])
    assert analyse("Керемет кітап", "kk-Cyrl").label == "positive"


def test_long_text_is_cut_not_refused() -> None:
    text = "Өте жаман. " * 200_000
    result = analyse(text, "kk")
    assert result.label == "negative"
    assert len(text) > MAX_CHARS


def test_batch_matches_single_calls_and_keeps_order() -> None:
    texts = [text for _, text, _ in CLEAR] + ["", "Hallo Welt"]
    langs: list[str | None] = [lang for lang, _, _ in CLEAR] + ["kk", "de"]
    batch = analyse_batch(texts, langs)
    assert [r.label for r in batch] == [
        analyse(t, lang).label for t, lang in zip(texts, langs, strict=True)
    ]
    for got, (_, _, expected) in zip(batch, CLEAR, strict=False):
        assert got.label == expected
    with pytest.raises(ValueError, match="languages"):
        analyse_batch(["a", "b"], ["kk"])


def test_training_and_numpy_inference_agree(tmp_path: Path) -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    script = train_script()
    texts = [
        ("керемет жақсы кітап рахмет", 2), ("өте жаман нашар", 0), ("жаксы екен ұнады", 2),
        ("ұнамады жаман қосымша", 0), ("орташа болды", 1), ("қалыпты, жаман емес", 1),
        ("супер керемет 👍", 2), ("ақша ұрлайды, нашар", 0), ("jaqsy keremet", 2),
        ("qotaq jaman", 0), ("бір жақсы, бір жаман", 1), ("рахмет авторға", 2),
    ] * 3  # fmt: skip
    docs = script.docs_of([t for t, _ in texts])
    y = np.array([lab for _, lab in texts])
    cfg = dict(script.KK_CONFIG)
    df = script.document_frequencies(docs, cfg)
    meta = {"format": 1, "name": "t", "classes": list(LABELS), "features": cfg}
    model = script.build_model(list(df), df, len(docs), meta)
    matrix = script.design_matrix(model, docs)
    clf = sklearn.LogisticRegression(C=2.0, max_iter=2000).fit(matrix, y)
    model.coef, model.intercept = clf.coef_, clf.intercept_
    model.save(tmp_path / "t.npz")
    loaded = LinearModel.load(tmp_path / "t.npz")
    probe = script.docs_of(["керемет қосымша", "жаман нашар кітап", "jaqsy emes", "😀"])
    expected = clf.predict_proba(script.design_matrix(model, probe))
    got = loaded.predict_proba(loaded.vectorize(probe))
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.shared_data
def test_kazsandra_validation_meets_target(shared_data: Path) -> None:
    script = train_script()
    valid = script.kazsandra_polarity("valid", shared_data)
    model = load_model("sentiment-kk")
    probs = script.predict(model, script.docs_of([ex.text for ex in valid]))
    y = np.array([ex.label for ex in valid])
    f1 = script.f1_macro(y, script.polarity(probs), [script.NEG, script.POS])
    assert len(valid) > 16_000
    assert f1 >= 0.74, f1


@pytest.mark.shared_data
def test_rusentne_validation_meets_target(shared_data: Path) -> None:
    script = train_script()
    train = script.rusentne("train", shared_data)
    valid = script.rusentne("valid", shared_data)
    scores = script.stance_scores(load_model("stance-ru"), train, valid)
    assert scores["n_valid"] > 2_800
    assert scores["pos_neg_macro_f1"] > 0.41, scores
