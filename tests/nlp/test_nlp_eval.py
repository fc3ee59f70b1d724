"""`elshi eval`: labelled files in every supported format, per-language reports, bad rows."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from elshi.nlp.evaluate import EvalError, read_labelled, report


def test_report_counts_and_f1() -> None:
    rep = report(
        ["positive", "negative", "negative", "neutral"],
        ["positive", "negative", "positive", "neutral"],
    )
    assert rep["n"] == 4
    assert rep["accuracy"] == pytest.approx(0.75)
    assert rep["confusion"]["negative"] == {"negative": 1, "positive": 1}
    # positive: P=1/2 R=1; negative: P=1 R=1/2 -> both F1 2/3
    assert rep["macro_f1_pos_neg"] == pytest.approx(2 / 3)


def test_readers_understand_kazsandra_rusentne_and_csv(tmp_path: Path) -> None:
    kz = tmp_path / "valid.zip"
    with zipfile.ZipFile(kz, "w") as zf:
        zf.writestr(
            "04_pc_valid.csv",
            "custom_id,text,text_cleaned,label,domain\na1,Өте жақсы,өте жақсы,1,market\n"
            "a2,Жаман,жаман,0,market\na3,,,1,market\n",
        )
    loaded = read_labelled(kz, "sentiment")
    assert loaded.fmt == "kazsandra"
    assert [(e.label, e.lang) for e in loaded.examples] == [("positive", "kk"), ("negative", "kk")]
    assert loaded.skipped == [("04_pc_valid.csv line 4", "empty text or label")]

    ru = tmp_path / "rusentne.csv"
    ru.write_text(
        "sentence\tentity\tentity_tag\tentity_pos_start_rel\tentity_pos_end_rel\tlabel\n"
        "Путин похвалил Казахстан.\tКазахстан\tCOUNTRY\t15\t24\t1\n"
        "Ничего.\tНичего\tOTHER\t0\t6\t7\n",
        encoding="utf-8",
    )
    loaded = read_labelled(ru, "stance")
    assert loaded.fmt == "rusentne"
    assert [(e.label, e.target, e.lang) for e in loaded.examples] == [
        ("positive", "Казахстан", "ru")
    ]
    assert "not a sentiment label" in loaded.skipped[0][1]

    bad = tmp_path / "bad.csv"
    bad.write_text("words,class\na,b\n", encoding="utf-8")
    with pytest.raises(EvalError, match="expected columns text,label"):
        read_labelled(bad, "sentiment")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("text,label\ncaf\xe9,fr\n".encode("latin-1"))
    with pytest.raises(EvalError, match="not UTF-8"):
        read_labelled(latin1, "language")


def test_cli_eval_language(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "lang.csv"
    f.write_text(
        "text,label\nҚазақстан Республикасы жаңа заң қабылдады,kk\n"
        "Россия и Казахстан подписали соглашение о сотрудничестве,ru\n"
        "The embassy opened a new consular office today,en\n,kk\n",
        encoding="utf-8",
    )
    r = cli("eval", "language", str(f), "--json")
    assert r.exit_code == 0, r.output
    import json

    body = json.loads(r.stdout)
    assert body["results"]["all"]["n"] == 3
    assert body["results"]["all"]["accuracy"] == 1.0
    assert body["skipped"] == 1
    r = cli("eval", "nonsense", str(f))
    assert r.exit_code == 2
    r = cli("eval", "language", str(tmp_path / "missing.csv"))
    assert r.exit_code == 2


def test_cli_eval_sentiment_and_stance(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    f = tmp_path / "sent.csv"
    f.write_text(
        "text,label,lang\n"
        '"Керемет қызмет, үлкен рахмет!",positive,kk\n'
        '"Өте жаман, ешкім көмектеспеді.",negative,kk\n'
        '"Great work, thank you!",positive,en\n'
        '"Awful and useless.",negative,en\n',
        encoding="utf-8",
    )
    body = json.loads(cli("eval", "sentiment", str(f), "--json").stdout)
    assert body["results"]["all"]["n"] == 4
    assert set(body["results"]) == {"all", "en", "kk"}
    assert body["results"]["all"]["accuracy"] == 1.0
    st = tmp_path / "stance.csv"
    st.write_text(
        "text,label,lang,target\n"
        "Путин похвалил Казахстан за мудрую политику.,positive,ru,Казахстан\n"
        "Президент резко осудил действия Казахстана и пригрозил санкциями.,negative,ru,Казахстан\n",
        encoding="utf-8",
    )
    body = json.loads(cli("eval", "stance", str(st), "--json").stdout)
    assert body["results"]["all"]["n"] == 2
    assert body["results"]["all"]["accuracy"] == 1.0


def test_cli_eval_entities(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    f = tmp_path / "ner.txt"
    f.write_text(
        "Қасым-Жомарт B-PERSON\nТоқаев I-PERSON\nАстанада O\nсөйледі O\n. O\n\n"
        "Ресей B-GPE\nпен O\nҚытай B-GPE\nкелісті O\n. O\n",
        encoding="utf-8",
    )
    r = cli("eval", "entities", str(f), "--json")
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert body["n_sentences"] == 2
    assert body["overall"]["support"] == 3
    assert 0.0 <= body["overall"]["f1"] <= 1.0
    r = cli("eval", "entities", str(tmp_path / "missing.txt"))
    assert r.exit_code == 2
