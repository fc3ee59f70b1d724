"""Sentiment of posts in English, Arabic and Chinese: shipped models, operator-trained models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from elshi.nlp.sentiment import (
    LABELS,
    LANGUAGES,
    analyse,
    analyse_batch,
    has_model,
    load_model,
    local_models_dir,
    models_dir,
    strip_social,
    tokenize,
)


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_shipped_post_models_load_offline_and_are_small(lang: str) -> None:
    path = Path(str(models_dir() / f"sentiment-{lang}.npz"))
    assert path.stat().st_size < 5_000_000
    model = load_model(f"sentiment-{lang}")
    assert model.classes == list(LABELS)
    assert model.coef.shape == (3, model.n_features)
    assert np.isfinite(model.coef).all() and np.isfinite(model.idf).all()
    assert model.meta["validation"]["n"] > 1000
    assert "train" in model.meta["data"]
    assert lang in LANGUAGES


def test_no_chinese_weights_ship() -> None:
    names = {f.name for f in models_dir().iterdir()}
    assert not any("zh" in name for name in names), names
    assert not has_model("zh")
    result = analyse("这家酒店非常好，服务很周到", "zh")
    assert (result.label, result.score, result.evidence) == ("neutral", 0.0, [])


POSTS = [
    ("en", "@embassy Thank you so much, wonderful help today! https://t.co/x1"),
    ("en", "Worst queue ever, nobody answers the phone #fail"),
    ("en", "The minister meets his counterpart on Tuesday."),
    ("ar", "شكرا جزيلا للسفارة على المساعدة الرائعة 😍"),
    ("ar", "\u200fالخدمة سيئة جدا ولا أحد يرد على الهاتف\u200f"),
    ("ar", "مَرْحَبًا بِكُمْ فِي السِّفَارَةِ"),  # with short vowels
    ("ar", "والله الموضوع ده حلو قوي"),  # Egyptian
    ("ar", "7abibi ana mabsoot ktir"),  # Arabizi
    ("ar", "@user #السعودية_مصر https://t.co/abc"),
]


@pytest.mark.parametrize(("lang", "text"), POSTS)
def test_posts_get_a_label_of_the_label_space(lang: str, text: str) -> None:
    result = analyse(text, lang)
    assert result.label in LABELS
    assert set(result.probs) == set(LABELS)
    assert sum(result.probs.values()) == pytest.approx(1.0, abs=1e-6)
    assert -1.0 <= result.score <= 1.0
    for unit, contribution in result.evidence:
        assert unit and contribution != 0.0
        assert "http" not in unit and "t.co" not in unit


def test_arabic_words_keep_their_vowel_marks_and_fold_letter_forms() -> None:
    words = [t.text for t in tokenize("مَرْحَبًا أحمد إلى مدرسة ـالـ")]
    assert words[0] == "مرحبا"
    assert words[1] == "احمد"
    assert words[2] == "الي"
    assert words[3] == "مدرسه"


@pytest.mark.parametrize("lang", ["en", "ar", "zh"])
@pytest.mark.parametrize("text", ["", "   ", "\u200f\u200e", "https://t.co/x @handle", None])
def test_empty_or_link_only_text_is_neutral(lang: str, text: str | None) -> None:
    result = analyse(text, lang)  # type: ignore[arg-type]
    assert result.label == "neutral"
    assert result.score == 0.0


def test_strip_social_keeps_hashtag_words_and_emails() -> None:
    cleaned = strip_social("@a hi http://t.cn/Ab正文 www.x.org #话题#正文 mail@example.org")
    assert "@a" not in cleaned and "http" not in cleaned and "www" not in cleaned
    assert "#话题#正文" in cleaned
    assert "mail@example.org" in cleaned


ZH_TRAIN = [
    ("酒店非常好，服务周到，房间干净", "positive"),
    ("很满意，下次还来", "positive"),
    ("性价比高，推荐", "positive"),
    ("这本书写得很精彩", "positive"),
    ("电脑速度快，屏幕漂亮", "positive"),
    ("服务态度差，房间很脏", "negative"),
    ("太失望了，不会再来", "negative"),
    ("价格贵，质量差", "negative"),
    ("这本书很无聊", "negative"),
    ("电脑发热严重，电池不行", "negative"),
]


def write_csv(path: Path, rows: list[tuple[str, str]], header: str = "text,label") -> Path:
    lines = [header] + [f'"{t}",{lab}' for t, lab in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_operator_trains_chinese_and_posts_use_it(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from elshi.nlp import sentiment_train as st

    rows = st.read_labelled_csv(write_csv(tmp_path / "zh.csv", ZH_TRAIN * 3))
    model = st.train_language("zh", rows, config={**st.LANG_CONFIGS["zh"], "min_df": 1})
    assert model.classes == ["negative", "positive"]
    folder = local_models_dir(tmp_path / "home")
    folder.mkdir(parents=True)
    model.save(folder / "sentiment-zh.npz")
    assert has_model("zh", folder)
    texts = ["服务周到，非常满意！", "质量差，太失望了", "", "#话题#正文很好"]
    results = analyse_batch(texts, "zh", local_dir=folder)
    assert [r.label in LABELS for r in results] == [True] * 4
    assert results[2].label == "neutral"
    for r in (results[0], results[1], results[3]):
        assert r.probs["neutral"] == 0.0
        assert r.probs["positive"] + r.probs["negative"] == pytest.approx(1.0)
        # Chinese without spaces: the evidence is pieces of the text itself.
        assert r.evidence
    assert results[0].score > results[1].score
    # Another language is not affected by the Chinese model.
    assert not has_model("de", folder)


def test_two_class_weights_reproduce_scikit_learn(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression

    from elshi.nlp import sentiment_train as st

    rows = [st.Labelled(t, st.LABEL_IDS[lab]) for t, lab in ZH_TRAIN * 2]
    model = st.train_language("zh", rows, config={**st.LANG_CONFIGS["zh"], "min_df": 1})
    docs = [st.doc_of(t, model.cfg) for t, _ in ZH_TRAIN]
    matrix = st.design_matrix(model, docs)
    y = np.array([r.label for r in rows[: len(ZH_TRAIN)]])
    clf = LogisticRegression(C=2.0, max_iter=3000, class_weight="balanced", tol=1e-4)
    clf.fit(
        st.design_matrix(model, [st.doc_of(r.text, model.cfg) for r in rows]),
        [r.label for r in rows],
    )
    expected = clf.predict_proba(matrix)
    got = model.predict_proba(model.vectorize(docs))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert set(np.unique(y)) == {0, 2}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("words,label\nhi,positive\n", "columns 'text' and 'label'"),
        ("text,label\nhi,positive\nbye,bad\n", "line 3: label 'bad'"),
    ],
)
def test_bad_training_file_says_what_and_where(tmp_path: Path, content: str, message: str) -> None:
    from elshi.nlp import sentiment_train as st

    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(st.DataError, match=message):
        st.read_labelled_csv(path)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\xe9,positive\n".encode("latin-1"))
    with pytest.raises(st.DataError, match="not UTF-8"):
        st.read_labelled_csv(latin)


def test_cli_trains_a_chinese_model(cli: object, settings: object, tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    train = write_csv(tmp_path / "train.csv", ZH_TRAIN * 3)
    valid = write_csv(tmp_path / "valid.csv", ZH_TRAIN[:4])
    result = cli("train", "sentiment", str(train), "--lang", "zh", "--valid", str(valid),  # type: ignore[operator]
                 "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "sentiment-zh" in result.output and "macro-F1" in result.output
    home = settings.home  # type: ignore[attr-defined]
    assert (local_models_dir(home) / "sentiment-zh.npz").is_file()
    # `elshi eval` scores with the operator's model as the enricher does.
    scored = cli("eval", "sentiment", str(valid), "--json")  # type: ignore[operator]
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.output)["results"]
    # Every row is positive: without the model all would be neutral (accuracy 0).
    assert report["zh"]["accuracy"] > 0.0, report
    bad = cli("train", "sentiment", str(train), "--lang", "xx", "--no-progress")  # type: ignore[operator]
    assert bad.exit_code != 0
    assert "--lang" in bad.output
    missing = cli("train", "sentiment", str(tmp_path / "none.csv"), "--lang", "zh")  # type: ignore[operator]
    assert missing.exit_code != 0
    assert "none.csv" in missing.output


def test_enricher_says_which_model_spoke(settings: Any, tmp_path: Path) -> None:
    from elshi.nlp.base import PostText
    from elshi.nlp.enrichers import SentimentEnricher

    posts = [
        PostText(id=1, text="Wonderful help from the embassy, thank you!", lang="en"),
        PostText(id=2, text="这家酒店非常好", lang="zh"),
        PostText(id=3, text="شكرا جزيلا", lang="ar"),
    ]
    enricher = SentimentEnricher(settings)
    found = {a.post_id: a for a in enricher.enrich_batch(posts)}
    assert found[1].value["model"] == "shipped" and found[1].label == "positive"
    assert found[2].value["model"] == "none" and found[2].label == "neutral"
    assert found[3].value["model"] == "shipped"
    pytest.importorskip("sklearn")
    from elshi.nlp import sentiment_train as st

    rows = [st.Labelled(t, st.LABEL_IDS[lab]) for t, lab in ZH_TRAIN * 3]
    model = st.train_language("zh", rows, config={**st.LANG_CONFIGS["zh"], "min_df": 1})
    folder = local_models_dir(settings.home)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "sentiment-zh.npz")
    again = {a.post_id: a for a in enricher.enrich_batch(posts)}
    assert again[2].value["model"] == "own"
    assert again[2].label in LABELS


def test_damaged_operator_model_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "sentiment-zh.npz").write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"sentiment-zh\.npz: not a readable sentiment model"):
        analyse("你好", "zh", local_dir=folder)
    # Other languages still work.
    assert analyse("Terrible, awful service", "en", local_dir=folder).label == "negative"
