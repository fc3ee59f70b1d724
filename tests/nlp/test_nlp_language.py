"""Language identification: rules, hard cases, bad input, speed, evaluation and shared data."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from elshi.nlp import language
from elshi.nlp.language import LangResult, detect, detect_batch, evaluate, score_predictions

FIXTURE = Path(__file__).parents[1] / "fixtures" / "nlp" / "langid_hard.csv"
KK_LETTERS = re.compile("[әғқңөұүһіӘҒҚҢӨҰҮҺІ]")


def _rows() -> list[dict[str, str]]:
    with FIXTURE.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("row", _rows(), ids=lambda r: f"{r['case']}:{r['text'][:24]}")
def test_hand_written_hard_cases(row: dict[str, str]) -> None:
    result = detect(row["text"])
    assert result.lang == row["lang"], (result, row)
    if row["mixed"]:
        assert sorted(result.mixed) == sorted(row["mixed"].split()), result
    else:
        assert result.mixed == [], result
    assert 0.0 <= result.score <= 1.0
    if result.lang != "und":
        assert result.features, "every decision explains itself"


def test_result_fields_and_explanations() -> None:
    kk = detect("Қазақстан Республикасының Сыртқы істер министрлігі мәлімдеме жасады.")
    assert (kk.lang, kk.script, kk.mixed) == ("kk", "Cyrl", [])
    assert kk.score > 0.9
    assert any(f.startswith("Kazakh letters") and "ә" in f and "қ" in f for f in kk.features)

    plain = detect("Жаксы нарсе екен маган унады")
    assert (plain.lang, plain.script) == ("kk", "Cyrl")
    assert "no language-specific Cyrillic letters" in plain.features
    assert any(f.startswith("char n-gram model: kk-Cyrl") for f in plain.features)

    latin = detect("Ote jaksy prilozhenie, magan unady")
    assert (latin.lang, latin.script) == ("kk", "Latn")
    model = [f for f in latin.features if f.startswith("char n-gram model: kk-Latn")]
    assert model and float(model[0].rsplit(" ", 1)[1]) > 0.5

    zh = detect("中华人民共和国外交部发言人今天表示")
    assert (zh.lang, zh.script) == ("zh", "Hani")
    ar = detect("شكرا جزيلا على المساعدة")
    assert (ar.lang, ar.script) == ("ar", "Arab")


def test_ukrainian_and_kazakh_share_i_but_are_told_apart() -> None:
    uk = detect("Він прийшов додому пізно ввечері.")
    kk = detect("Біз кеше үйге кеш келдік.")
    assert (uk.lang, kk.lang) == ("uk", "kk")
    assert detect("Ми поїхали до Києва в понеділок.").features[0].startswith("Ukrainian letters")


def test_kyrgyz_mongolian_uzbek_letters() -> None:
    assert detect("Бүгүн аба ырайы жакшы, эртең тоого чыгабыз.").lang == "ky"
    assert detect("Өнөөдөр бид хамтдаа кино үзэхээр явна.").lang == "mn"
    uz = detect("Ўзбекистон Республикаси Ташқи ишлар вазирлиги")
    assert uz.lang == "uz" and uz.features[0].startswith("Uzbek letters")


def test_latin_kazakh_against_turkish_uzbek_english() -> None:
    assert (
        detect("Qazaqstan Respublikasynyñ Syrtqy ıster ministrlıgı mälımdeme jasady.").lang == "kk"
    )
    assert detect("Türkiye Dışişleri Bakanlığı bugün bir açıklama yaptı.").lang == "tr"
    assert detect("Oʻzbekiston Tashqi ishlar vazirligi bayonot berdi.").lang == "uz"
    assert detect("The Ministry of Foreign Affairs issued a statement today.").lang == "en"


def test_homoglyphs_latin_letters_inside_kazakh_words() -> None:
    # Kazakh typed with Latin i and the schwa ə in place of Cyrillic і and ә.
    result = detect("Бiз бүгiн мектепке бардық, бəрі жақсы")
    assert (result.lang, result.script) == ("kk", "Cyrl")


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\n\t  ",
        "😀😀😀👍🏽",
        "12345 67",
        "https://example.org/a?b=1",
        "@user #tag",
        "ok",
        "…!?",
    ],
)
def test_too_little_text_is_und(text: str) -> None:
    result = detect(text)
    assert result.lang == "und"
    assert result.score == 0.0
    assert result.mixed == []


@pytest.mark.parametrize(
    "text",
    [
        "\ud800\udc00 Қазақстан \udfff Республикасы",
        "Казахстан\ufffd\ufffd и Россия подписали соглашение",
        "\x00\x01\x02 control \u200b zero width \ufeff bom",
        "a" * 5000,
        "\u0301\u0301\u0301",
    ],
)
def test_broken_text_never_raises(text: str) -> None:
    result = detect(text)
    assert isinstance(result, LangResult)
    assert 0.0 <= result.score <= 1.0


def test_lone_surrogates_are_ignored_not_fatal() -> None:
    assert detect("\ud800\udc00 Қазақстан \udfff Республикасы").lang == "kk"
    assert detect("Казахстан\ufffd\ufffd и Россия подписали соглашение").lang == "ru"


def test_one_megabyte_text_is_capped() -> None:
    big = "Сегодня министры обсудили вопросы торговли и транспорта. " * 20000
    assert len(big) > 1_000_000
    result = detect(big)
    assert result.lang == "ru"
    assert result.features[0] == f"analysed the first {language.MAX_CHARS} of {len(big)} characters"


def test_batch_matches_single() -> None:
    # Speed is measured by bench/langid_speed.py, not here: test machines are shared.
    texts = [r["text"] for r in _rows()] * 30
    results = detect_batch(texts)
    assert [r.lang for r in results] == [detect(t).lang for t in texts]


def test_thread_safe_from_a_cold_start() -> None:
    ident = language.LanguageIdentifier()
    texts = [r["text"] for r in _rows()]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(ident.detect, texts * 4))
    serial = [ident.detect(t) for t in texts * 4]
    assert [r.lang for r in parallel] == [r.lang for r in serial]


def test_score_predictions_by_hand() -> None:
    result = score_predictions(["kk", "kk", "ru", "en"], ["kk", "ru", "ru", "kk"])
    assert result["n"] == 4
    assert result["accuracy"] == 0.5
    assert result["per_language"]["kk"] == {
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "support": 2,
    }
    assert result["per_language"]["ru"]["precision"] == 0.5
    assert result["per_language"]["ru"]["recall"] == 1.0
    assert result["per_language"]["en"]["f1"] == 0.0
    assert result["macro_f1"] == round((0.5 + 2 / 3 + 0.0) / 3, 4)
    assert result["confusion"] == {"en": {"kk": 1}, "kk": {"kk": 1, "ru": 1}, "ru": {"ru": 1}}


def test_evaluate_on_the_fixture() -> None:
    rows = _rows()
    result = evaluate((r["text"], r["lang"]) for r in rows)
    assert result["n"] == len(rows)
    assert sum(sum(v.values()) for v in result["confusion"].values()) == len(rows)
    correct = sum(result["confusion"][g].get(g, 0) for g in result["confusion"])
    assert result["accuracy"] == round(correct / len(rows), 4)
    assert set(result["per_language"]) >= {"kk", "ru", "en", "zh", "ar", "ky", "uz", "uk", "tr"}
    assert result["mixed_rate"] == round(sum(1 for r in rows if r["mixed"]) / len(rows), 4)


def test_shipped_model_is_small_portable_and_complete() -> None:
    path = language.MODEL_PATH
    assert path.stat().st_size < 3_000_000
    with np.load(path, allow_pickle=False) as data:
        classes = [str(c) for c in data["classes"]]
        assert data["logp"].shape == (len(data["ngrams"]), len(classes))
    assert {"kk-Cyrl", "kk-Latn", "ru-Cyrl", "en-Latn", "ky-Cyrl", "uz-Latn", "tr-Latn"} <= set(
        classes
    )


@pytest.mark.shared_data
def test_zero_kk_ru_confusion_on_standard_cyrillic(shared_data: Path) -> None:
    """KazNERD sentences with 2+ Kazakh letters vs all RuSentNE validation sentences (unseen)."""
    kk: list[str] = []
    tokens: list[str] = []
    for line in (
        (shared_data / "kaznerd" / "IOB2_valid.txt").read_text(encoding="utf-8").splitlines()
    ):
        if line.strip():
            tokens.append(line.rsplit(" ", 1)[0])
        elif tokens:
            kk.append(" ".join(tokens))
            tokens = []
    with (shared_data / "rusentne-2023" / "validation_data_labeled.csv").open(
        encoding="utf-8"
    ) as fh:
        ru = sorted({row["sentence"] for row in csv.DictReader(fh, delimiter="\t")})
    standard_kk = [t for t in kk if len(KK_LETTERS.findall(t)) >= 2]
    assert len(standard_kk) > 10000 and len(ru) > 2000
    kk_as_ru = [
        t for t, r in zip(standard_kk, detect_batch(standard_kk), strict=True) if r.lang == "ru"
    ]
    ru_as_kk = [t for t, r in zip(ru, detect_batch(ru), strict=True) if r.lang == "kk"]
    assert kk_as_ru == [] and ru_as_kk == []


def _kazsandra(folder: Path, name: str) -> list[dict[str, str]]:
    with zipfile.ZipFile(folder / "kazsandra" / name) as zf, zf.open(zf.namelist()[0]) as fh:
        return list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8")))


@pytest.mark.shared_data
def test_latin_kazakh_reviews_recognised(shared_data: Path) -> None:
    """KazSAnDRA validation reviews in Latin letters, minus any row the train files also hold."""
    trained = {
        r["custom_id"]
        for name in ("03_pc_train_rus.zip", "08_sc_train_rus.zip")
        for r in _kazsandra(shared_data, name)
    }
    latin = [
        r["text"]
        for r in _kazsandra(shared_data, "04_pc_valid.zip")
        if r["custom_id"] not in trained
        and not re.search("[\u0400-\u04ff]", r["text"])
        and len(re.findall("[A-Za-z]", r["text"])) >= 10
    ]
    assert len(latin) > 100
    found = detect_batch(latin)
    share = sum(1 for r in found if r.lang == "kk") / len(latin)
    assert share > 0.95, share


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        # No Kazakh letters, but Kazakh words or Kazakh case endings on country names.
        ("«КОВИД-19» немесе коронавирус.", "kk"),
        ("Иранда — 1500, Францияда — 130, Германияда — 150.", "kk"),
        ("«Босфорские огони» аталатын фестиваль.", "kk"),
        # Only қ, and Kazakh's "where" among Russian words.
        ("Қайда министр образования, новый парень?", "kk"),
        # Russian with "да" and a Kazakh name stays Russian.
        ("Да, он приехал в Германию.", "ru"),
        ("Президент Қасым-Жомарт Тоқаев провёл встречу с послами в Астане.", "ru"),
    ],
)
def test_kazakh_words_decide_where_letters_cannot(text: str, lang: str) -> None:
    result = detect(text)
    assert result.lang == lang, result.features
    if lang == "kk" and "Kazakh letters" not in " ".join(result.features):
        assert any(f.startswith("Kazakh words") for f in result.features), result.features


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        # A Kazakh cue word that is part of a name does not flip a Russian sentence.
        ("Марин Ле Пен намерена добиваться коренной реформы Евросоюза", "ru"),
        ("Делегация прибыла из Эр-Рияда на переговоры о поставках", "ru"),
        # Links, topics and emoticon codes glued to Chinese text without spaces.
        ("#话题#正文内容非常丰富今天天气很好", "zh"),
        ("http://t.cn/A6abcXyz今天天气很好我们去公园", "zh"),
        ("今天天气很好[good][doge]我们去公园玩", "zh"),
        ("好[good]", "zh"),
        # The middle dot of transliterated names is not Japanese.
        ("日本首相安倍・晋三今天访问北京", "zh"),
        # Telegram's empty link before the text.
        ("[\u200b](https://t.me/news/1)Текст новости о переговорах в Москве", "ru"),
    ],
)
def test_reported_language_id_bugs(text: str, lang: str) -> None:
    result = detect(text)
    assert result.lang == lang, result.features
