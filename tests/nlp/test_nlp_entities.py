"""Entity recognition: gazetteer across scripts and case endings, watch list, Kazakh CRF,
evaluation on IOB2 files, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from elshi.nlp import entities, gazetteer, gazetteer_build
from elshi.nlp.entities import Entity, Watchlist, evaluate_iob, extract, extract_batch
from elshi.nlp.evaluate import EvalError

CARD = Path(entities.__file__).parent / "models" / "MODEL_CARD_entities.md"


def ids(found: list[Entity], source: str | None = None) -> list[str]:
    return [e.id for e in found if source is None or e.source == source]


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        (
            "Қазақстанның Ресеймен және Қытаймен қарым-қатынасы ШЫҰ-ның саммитінде, БҰҰ-да "
            "талқыланды. Тоқаевқа хат келді.",
            "kk",
            ["country:KZ", "country:RU", "country:CN", "org:SCO", "org:UN", "person:tokayev"],
        ),
        (
            "Токаев обсудил с Путиным ситуацию вокруг Казахстана, России и Китая на саммите ШОС "
            "и в ООН.",
            "ru",
            [
                "person:tokayev",
                "person:putin",
                "country:KZ",
                "country:RU",
                "country:CN",
                "org:SCO",
                "org:UN",
            ],
        ),
        (
            "Kazakhstan's President Tokayev told the UN that Russia's and China's roles in the "
            "SCO matter.",
            "en",
            ["country:KZ", "person:tokayev", "org:UN", "country:RU", "country:CN", "org:SCO"],
        ),
        (
            "哈萨克斯坦总统托卡耶夫表示，俄罗斯和中国在上海合作组织和联合国框架内合作。",
            "zh",
            ["country:KZ", "person:tokayev", "country:RU", "country:CN", "org:SCO", "org:UN"],
        ),
        (
            "قال الرئيس توكاييف إن كازاخستان تعمل مع روسيا والصين في منظمة شنغهاي للتعاون "
            "وللأمم المتحدة دور.",
            "ar",
            ["person:tokayev", "country:KZ", "country:RU", "country:CN", "org:SCO", "org:UN"],
        ),
        (
            "Prezident Toqaev Qazaqstannyñ Reseimen jäne Qytaimen baılanysyn talqylady.",
            "kk",
            ["person:tokayev", "country:KZ", "country:RU", "country:CN"],
        ),
    ],
)
def test_mentions_resolve_to_ids_in_every_script(text: str, lang: str, expected: list[str]) -> None:
    found = extract(text, lang)
    assert ids(found, "gazetteer") == expected
    for e in found:
        assert text[e.start : e.end] == e.text
        assert e.features and 0 < e.score <= 1


def test_endings_are_reported_and_inflected_forms_keep_the_whole_word() -> None:
    [kz] = extract("Қазақстанның", "kk")
    assert (kz.id, kz.type, kz.text) == ("country:KZ", "country", "Қазақстанның")
    assert kz.features == ["alias 'Қазақстан' + ending 'ның'"]
    [un] = extract("БҰҰ-ға", "kk")
    assert (un.id, un.text, un.features) == ("org:UN", "БҰҰ-ға", ["alias 'БҰҰ' + ending '-ға'"])
    [ru] = extract("России", "ru")
    assert ru.features == ["alias 'Россия' + ending 'и'"]
    assert ids(extract("Қасым-Жомарт Тоқаевтың сапары")) == ["person:tokayev"]
    assert extract("Қасым-Жомарт Тоқаевтың сапары")[0].text == "Қасым-Жомарт Тоқаевтың"
    assert ids(extract("Ресейлік сарапшылар")) == ["country:RU"]
    assert "derived adjective" in extract("Ресейлік сарапшылар")[0].features[0]


def test_capitals_orgs_and_people_carry_their_types() -> None:
    found = extract("Президент встретился в Астане с Ван И и главой ОДКБ; визит в Москву.", "ru")
    got = {e.id: e.type for e in found if e.source == "gazetteer"}
    assert got == {
        "city:astana": "capital",
        "person:wang-yi": "person",
        "org:CSTO": "org",
        "city:moscow": "capital",
    }
    info = entities.describe("country:KZ")
    assert info is not None and info.names["kk"] == "Қазақстан" and info.names["zh"] == "哈萨克斯坦"
    tokayev = entities.describe("person:tokayev")
    assert tokayev is not None and tokayev.country == "KZ"
    assert entities.describe("country:XX") is None


@pytest.mark.parametrize(
    "text",
    [
        "Того же мнения придерживаются эксперты.",  # "Того" (Togo) starting a sentence is "that"
        "Пресейл билетов начался, прессейф закрыт.",  # "Ресей" inside unrelated words
        "I like turkey and china plates; chad was here.",  # lower-case English words
        "HELP US NOW PLEASE",  # a short abbreviation in shouted text
        "Indiana and Chinatown are not countries.",
        "在经济上合作，发展中国家的发展，内蒙古的草原。",  # 中国 inside 发展中国家
        "الوضع المالي في العاصمة",  # مالي (financial) is not Mali
        "Бұл ғана емес, ол әр сөзді тыңдайды.",  # ғана ("only") folds like Гана (Ghana)
    ],
)
def test_no_false_positives_in_tricky_sentences(text: str) -> None:
    assert ids(extract(text, ner=False)) == []


def test_strict_names_still_match_where_capitalised_mid_sentence() -> None:
    assert ids(extract("Президент Того прибыл в Гану.", "ru", ner=False)) == [
        "country:TG",
        "country:GH",
    ]


def test_watchlist_with_aliases_endings_and_case_rules() -> None:
    watch = [
        {
            "id": "watch:aif",
            "name": "Astana International Forum",
            "aliases": ["Астана халықаралық форумы", "АХФ", "Астанинский международный форум"],
            "type": "event",
        },
        "мигрант",
        "Каспий",
    ]
    text = (
        "Астана халықаралық форумына келген мигранттардың саны, АХФ-ға қатысушылар; "
        "Каспийдегі жағдай. Astana International Forum's agenda. "
        "На Астанинском международном форуме обсудили мигрантов."
    )
    found = [e for e in extract(text, "kk", watch) if e.source == "watchlist"]
    got = [(e.id, e.text) for e in found]
    assert got == [
        ("watch:aif", "Астана халықаралық форумына"),
        ("watch:мигрант", "мигранттардың"),
        ("watch:aif", "АХФ-ға"),
        ("watch:каспий", "Каспийдегі"),
        ("watch:aif", "Astana International Forum's"),
        ("watch:aif", "Астанинском международном форуме"),
        ("watch:мигрант", "мигрантов"),
    ]
    assert {e.type for e in found if e.id == "watch:aif"} == {"event"}
    # An all-capitals alias is an abbreviation: "ахф" in lower case is not it.
    assert ids(extract("ахф", "kk", watch), "watchlist") == []
    # Gazetteer entities are still reported alongside the watch list.
    assert "city:astana" in ids(extract(text, "kk", watch), "gazetteer")
    compiled = Watchlist(watch)
    assert ids(extract("Каспийдің", "kk", compiled), "watchlist") == ["watch:каспий"]
    assert entities.compile_watchlist(watch) is entities.compile_watchlist(list(watch))


def test_crf_finds_people_and_organisations_beyond_the_gazetteer() -> None:
    text = (
        "Ұлттық экономика министрлігінің өкілі Бағлан Исабеков Ақтөбе облысында жаңа "
        "мектептерді аралады."
    )
    found = [e for e in extract(text, "kk") if e.source == "crf"]
    got = {(e.type, e.text) for e in found}
    assert ("person", "Бағлан Исабеков") in got
    assert ("org", "Ұлттық экономика министрлігінің") in got
    person = next(e for e in found if e.type == "person")
    assert person.fine_type == "PERSON" and person.id == "ner:person:бағлан исабеков"
    assert person.features[0].startswith("CRF B-PERSON ")
    org = next(e for e in found if e.type == "org")
    assert org.id == "ner:org:ұлттық экономика министрлігі"  # genitive ending stripped
    # The CRF runs on Kazakh only; gazetteer names suppress CRF duplicates.
    assert [e for e in extract(text, "en") if e.source == "crf"] == []
    found = extract("Мемлекет басшысы Тоқаев Ақордада сөз сөйледі.", "kk")
    assert ids(found, "gazetteer") == ["person:tokayev"]
    assert not [e for e in found if e.source == "crf" and e.type == "person"]


def test_russian_rules_are_labelled_lower_confidence() -> None:
    found = extract("Вчера Александр Усик провёл встречу, сообщает ФСО.", "ru")
    rules = [e for e in found if e.source == "heuristic"]
    assert [(e.type, e.text) for e in rules] == [("person", "Александр Усик"), ("org", "ФСО")]
    assert all(e.score < 0.5 and "lower confidence" in e.features[0] for e in rules)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   \n\t ",
        None,
        12345,
        "🇰🇿🔥😀" * 50,
        "\ud800 Қазақстан \udfff",
        b"\xff\xfe\xfa Kazakhstan \xc3",
        "Қазақстан " * 120_000,
        "." * 10_000,
        "\x00\x01\x02",
        "ҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚҚ" * 100,
    ],
)
def test_bad_input_never_raises(bad: object) -> None:
    found = extract(bad, "kk", ["Каспий"])
    assert isinstance(found, list)
    for e in found:
        assert e.end <= entities.MAX_CHARS
    batch = extract_batch([bad, "Ресей"], ["kk"])  # fewer langs than texts is fine
    assert len(batch) == 2 and ids(batch[1]) == ["country:RU"]


def test_long_text_is_cut_and_surrogates_do_not_shift_offsets() -> None:
    found = extract("Қазақстан " * 120_000, "kk")
    assert len(found) == entities.MAX_CHARS // len("Қазақстан ")
    [kz] = extract("\ud800 Қазақстан", "kk")
    assert (kz.start, kz.end) == (2, 11)
    assert ids(extract(b"\xff Kazakhstan", "en")) == ["country:KZ"]


def test_batch_smoke() -> None:
    texts = [
        "Қазақстан мен Қытай",
        "Россия и Китай",
        "The UN and the EU",
        "联合国",
        "الأمم المتحدة",
    ] * 100
    out = extract_batch(texts, ["kk", "ru", "en", "zh", "ar"] * 100, ["Каспий"])
    assert len(out) == 500
    assert [len(r) for r in out[:5]] == [2, 2, 2, 1, 1]


def test_evaluate_iob_scores_a_small_file_and_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "small.iob"
    path.write_text(
        "Мемлекет O\nбасшысы O\nҚасым-Жомарт B-PERSON\nТоқаев I-PERSON\nАстанада B-GPE\n"
        "болды O\n. O\n\n"
        "бұл жол бұзылған\n\n"
        "Ұлттық B-ORGANISATION\nбанк I-ORGANISATION\nтөрағасы B-POSITION\nҚазақстан B-GPE\n"
        "туралы O\nайтты O\n. O\n",
        encoding="utf-8",
    )
    rep = evaluate_iob(path)
    assert rep["n_sentences"] == 2 and rep["n_tokens"] == 14
    assert rep["skipped"] == [
        ("small.iob:9", "expected 'token LABEL' in IOB2, got 'бұл жол бұзылған'")
    ]
    assert set(rep["per_type"]) >= {"PERSON", "GPE", "ORGANISATION", "POSITION"}
    assert rep["per_type"]["GPE"]["support"] == 2
    assert 0.5 <= rep["overall"]["f1"] <= 1.0
    assert set(rep["coarse"]["per_type"]) >= {"person", "gpe", "org"}
    with pytest.raises(EvalError):
        evaluate_iob(tmp_path / "missing.iob")
    (tmp_path / "empty.iob").write_text("\n\n", encoding="utf-8")
    with pytest.raises(EvalError):
        evaluate_iob(tmp_path / "empty.iob")


def test_chunks_follow_conlleval() -> None:
    labels = ["B-PER", "I-PER", "O", "I-ORG", "I-ORG", "B-ORG", "I-LOC", "O"]
    assert entities.chunks(labels) == [("PER", 0, 2), ("ORG", 3, 5), ("ORG", 5, 6), ("LOC", 6, 7)]
    rep = entities.score_chunks([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
    assert rep["overall"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_shipped_gazetteer_is_current() -> None:
    shipped = json.loads(gazetteer.DATA_PATH.read_text(encoding="utf-8"))
    assert shipped["leaders_compiled"] == gazetteer.LEADERS_COMPILED
    rebuilt = gazetteer_build.build_data()
    assert [e["id"] for e in shipped["entities"]] == [e["id"] for e in rebuilt["entities"]]
    kinds = {e["id"].split(":")[0] for e in shipped["entities"]}
    assert kinds == {"country", "org", "region", "city", "person"}


@pytest.mark.shared_data
def test_kaznerd_dev_f1_meets_the_model_card(shared_data: Path) -> None:
    claimed = re.search(r"all 25 types[^\n]*?F1 \*\*(0\.\d+)\*\*", CARD.read_text(encoding="utf-8"))
    assert claimed, "model card must state the dev F1"
    sentences, skipped = entities.read_iob(shared_data / "kaznerd" / "IOB2_valid.txt")
    assert skipped == []
    _, dev = entities.split_dev(sentences)
    rep = entities.evaluate_sentences(dev)
    assert rep["n_sentences"] == 1116
    assert rep["overall"]["f1"] >= float(claimed.group(1)) - 0.005
    assert rep["coarse"]["per_type"]["person"]["f1"] >= 0.9


def test_the_alias_matcher_finds_aliases_added_after_a_search() -> None:
    """What the matcher remembers per word is forgotten when an alias is added."""
    matcher = gazetteer.TokenMatcher()
    matcher.add(0, "Astana", "en")
    matcher.freeze()
    text = "Astana and Almaty signed; Almaty's mayor came"
    assert [h.ref for h in matcher.find(gazetteer.tokenize(text))] == [0]
    matcher.add(1, "Almaty", "en")
    matcher.freeze()
    hits = matcher.find(gazetteer.tokenize(text))
    assert [(h.ref, text[h.start : h.end]) for h in hits] == [
        (0, "Astana"),
        (1, "Almaty"),
        (1, "Almaty's"),
    ]


def test_shouting_is_told_by_the_share_of_capital_letters() -> None:
    assert gazetteer.tokenize("HELP US NOW WITH THE UN VOTE").shouting
    assert not gazetteer.tokenize("Help us now with the UN vote").shouting
    # Letters only count: digits and capital-looking symbols (Roman numeral Ⅻ) do not.
    assert not gazetteer.tokenize("Ⅻ Ⅻ Ⅻ Ⅻ Ⅻ Ⅻ Ⅻ Ⅻ Ⅻ Ⅻ Ⅻ abcdefghij").shouting
    assert not gazetteer.tokenize("UN 2024").shouting
