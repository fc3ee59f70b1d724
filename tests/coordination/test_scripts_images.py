"""Co-text across scripts and co-image: the same message in Kazakh Cyrillic and Latin, or in
Russian Cyrillic and transliteration, shares one near_text key; the same image hash (the
anonymised perceptual hashes of CooRTweet's german_elections.csv) is a co-image."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from elshi.coordination import engine, service
from elshi.coordination.keys import near_text_key, post_keys
from elshi.db import Database
from elshi.nlp.folding import one_script
from tests.coordination.support import Facts, mapped_posts, reference_edges, rows_of
from tests.coordination.test_service import ingest, stored_facts

# The Constitution of the Republic of Kazakhstan, article 1, first sentence, in Cyrillic, and
# as it is written in the 2021 Latin alphabet, in the 2017 one (apostrophes), in the 2018 one
# (acute accents) and in the informal Latin of chats (no Kazakh letters, zh and kh).
KK_CYRILLIC = (
    "Қазақстан Республикасы өзін демократиялық, зайырлы, құқықтық және әлеуметтік мемлекет "
    "ретінде орнықтырады, оның ең қымбат қазынасы – адам және адамның өмірі, құқықтары мен "
    "бостандықтары."
)
KK_LATIN = (
    # 2021
    "Qazaqstan Respublikasy özın demokratialyq, zaiyrly, qūqyqtyq jäne äleumettık memleket "
    "retınde ornyqtyrady, onyñ eñ qymbat qazynasy – adam jäne adamnyñ ömırı, qūqyqtary men "
    "bostandyqtary.",
    # 2017
    "Qazaqstan Respy'blikasy o'zin demokrati'ialyq, zai'yrly, quqyqtyq ja'ne a'ley'mettik "
    "memleket retinde ornyqtyrady, onyn' en' qymbat qazynasy - adam ja'ne adamnyn' o'miri, "
    "quqyqtary men bostandyqtary.",
    # 2018
    "Qazaqstan Respýblıkasy ózin demokratııalyq, zaıyrly, quqyqtyq jáne áleýmettik memleket "
    "retinde ornyqtyrady, onyń eń qymbat qazynasy - adam jáne adamnyń ómiri, quqyqtary men "
    "bostandyqtary.",
    # informal
    "Kazakhstan Respublikasy ozin demokratiyalyk, zaiyrly, kukyktyk zhane aleumettik memleket "
    "retinde ornyktyrady, onyn en kymbat kazynasy - adam zhane adamnyn omiri, kukyktary men "
    "bostandyktary!!",
)
# A tweet of the IRA sample (FedotovaRoza), and the same in two transliterations: the informal
# one of Russian chats and the one of Russian passports (ICAO).
RU_CYRILLIC = (
    "Украина будет покупать уголь в США, Австралии или Южной Африке.На деньги МВФ,в котором "
    "один из учредителей-Россия."
)
RU_LATIN = (
    "Ukraina budet pokupat' ugol' v SShA, Avstralii ili Yuzhnoy Afrike.Na den'gi MVF,v kotorom "
    "odin iz uchrediteley-Rossiya.",
    "UKRAINA BUDET POKUPAT UGOL V SSHA, AVSTRALII ILI IUZHNOI AFRIKE. NA DENGI MVF, V KOTOROM "
    "ODIN IZ UCHREDITELEI - ROSSIIA",
)


@pytest.mark.parametrize(
    ("cyrillic", "latin"),
    [(KK_CYRILLIC, text) for text in KK_LATIN] + [(RU_CYRILLIC, text) for text in RU_LATIN],
)
def test_cyrillic_and_latin_spellings_share_the_near_text_key(cyrillic: str, latin: str) -> None:
    key = near_text_key(cyrillic)
    assert key is not None and key == near_text_key(latin)
    # As written, the texts differ: the plain co-text key does not join them.
    assert dict(_keys(cyrillic))["text"] != dict(_keys(latin))["text"]


def test_different_texts_keep_different_keys() -> None:
    keys = {
        near_text_key(t)
        for t in (
            KK_CYRILLIC,
            RU_CYRILLIC,
            # The same words in another order, and the Russian text with one word changed.
            "Қазақстан Республикасы өзін әлеуметтік, құқықтық, зайырлы және демократиялық "
            "мемлекет ретінде орнықтырады",
            RU_CYRILLIC.replace("уголь", "газ"),
            # Translation is not transliteration.
            "Ukraine will buy coal in the USA, Australia or South Africa with IMF money.",
        )
    }
    assert len(keys) == 5 and None not in keys
    # Short texts are shared by chance: they have no key.
    assert near_text_key("Қазақстан алға!") is None
    assert near_text_key("RT @x: https://t.co/abc 👍") is None


def test_the_key_ignores_links_punctuation_case_and_the_retweet_prefix() -> None:
    base = near_text_key(RU_CYRILLIC)
    assert near_text_key("RT @FedotovaRoza: " + RU_CYRILLIC + " https://t.co/x1") == base
    assert near_text_key(RU_CYRILLIC.upper().replace(",", " , ") + " 🇷🇺") == base
    # Other scripts pass through, without their combining marks.
    assert one_script("Ä Ü 北京") == "a u 北京"


def test_co_text_across_scripts_links_two_accounts() -> None:
    t0 = int(datetime(2016, 3, 1, 12, tzinfo=UTC).timestamp() * 1000)
    texts = [KK_CYRILLIC, KK_LATIN[0], RU_CYRILLIC, RU_LATIN[0]]
    posts = [
        Facts(id=i + 1, account=1 + i % 2, time_ms=t0 + i * 30_000, keys=tuple(_keys(t)))
        for i, t in enumerate(texts)
    ]
    got = engine.edges(engine.co_actions(rows_of(posts, "near_text"), window=60)).as_dict()
    assert got == reference_edges(posts, "near_text", window=60) == {(1, 2): 2, (2, 1): 2}
    assert engine.edges(engine.co_actions(rows_of(posts, "text"), window=60)).as_dict() == {}


def test_image_hashes_and_object_ids_from_extra() -> None:
    keys = post_keys(
        platform="generic",
        text="",
        repost_of=None,
        reply_to=None,
        extra={"image_hash": ["9280", "9280", "11"], "url_id": 7.0, "hashtag_id": "", "x": 1},
        content_hash=None,
    )
    assert keys == [("link", "id:7"), ("image", "9280"), ("image", "11")]


# ---------------------------------------------------------------------------- co-image

#: The day of german_elections.csv with the most image co-shares within ten minutes.
DAY = datetime(2021, 8, 16, tzinfo=UTC)


@pytest.fixture(scope="module")
def german_day(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rows of one day of german_elections.csv, as they are in the file."""
    src = shared_data / "coortweet" / "german_elections.csv"
    out = tmp_path_factory.mktemp("coortweet") / "german_day.csv"
    start = DAY.timestamp()
    with src.open(encoding="utf-8", newline="") as fh, out.open("w", newline="") as dst:
        reader = csv.DictReader(fh)
        writer = csv.DictWriter(dst, fieldnames=list(reader.fieldnames or ()))
        writer.writeheader()
        writer.writerows(r for r in reader if start <= float(r["timestamp"]) < start + 86400)
    return out


def test_the_coortweet_profile_maps_accounts_times_and_objects(german_day: Path) -> None:
    posts = mapped_posts(german_day, "coortweet")
    with german_day.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(posts) == len(rows) > 3000
    for post, row in zip(posts, rows, strict=True):
        assert post.time_ms == round(float(row["timestamp"]) * 1000)
        expected = {
            ("link", f"id:{row['url_id']}") if row["url_id"] else None,
            ("domain", f"id:{row['domain_id']}") if row["domain_id"] else None,
            ("hashtag", f"id:{row['hashtag_id']}") if row["hashtag_id"] else None,
            ("image", row["phash_id"]) if row["phash_id"] else None,
        } - {None}
        # The title ("anonymised post N") gives each post a near_text key of its own.
        assert {k for k in post.keys if k[0] != "near_text"} == expected


def test_a_folded_record_carries_every_object_of_its_post(german_day: Path, tmp_path: Path) -> None:
    """CooRTweet's long format folded to one JSON record per post (as the quality bench
    imports it): the ids come as lists and every one becomes a key."""
    folded: dict[str, dict[str, Any]] = {}
    with german_day.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            post = folded.setdefault(row["post_id"], {k: row[k] for k in _SCALARS})
            for col in ("url_id", "hashtag_id", "domain_id", "phash_id"):
                if row[col] and row[col] not in post.setdefault(col, []):
                    post[col].append(row[col])
    many = [p for p in folded.values() if len(p.get("phash_id", ())) >= 2]
    assert many
    path = tmp_path / "folded.ndjson"
    path.write_text("".join(json.dumps(p) + "\n" for p in many), encoding="utf-8")
    for post, record in zip(mapped_posts(path, "coortweet"), many, strict=True):
        images = [key for kind, key in post.keys if kind == "image"]
        assert images == record["phash_id"]
        assert {key for kind, key in post.keys if kind == "hashtag"} == {
            f"id:{h}" for h in record.get("hashtag_id", ())
        }


_SCALARS = ("post_id", "account_id", "timestamp")


def test_co_image_edges_are_the_reference_edges(german_day: Path) -> None:
    posts = mapped_posts(german_day, "coortweet")
    expected = reference_edges(posts, "image", window=600)
    assert len(expected) > 50
    acts = engine.co_actions(rows_of(posts, "image"), window=600, narrow=60)
    assert engine.edges(acts).as_dict() == expected


def test_stored_co_image_edges_and_groups(german_day: Path, db: Database) -> None:
    stored = ingest(db, german_day, "coortweet")
    report = service.update(
        db, params=service.Params(window=600, narrow=60, min_weight=1, min_participation=2)
    )
    assert report.posts == stored > 3000 and report.co_actions["image"] > 0
    facts = stored_facts(db)
    with db.engine.connect() as conn:
        for kind in ("image", "link", "domain", "hashtag"):
            expected = reference_edges(facts, kind, window=600)
            assert expected, kind
            assert service.edge_set(conn, kind) == expected, kind
        # Co-images count in the combined network groups are drawn from.
        combined = service.edge_set(conn, service.ALL)
        assert set(service.edge_set(conn, "image")) <= set(combined)
        groups = service.groups(conn)
    assert report.groups == len(groups) > 0


def _keys(text: str) -> list[tuple[str, str]]:
    return post_keys(
        platform="twitter", text=text, repost_of=None, reply_to=None, extra=None, content_hash=None
    )
