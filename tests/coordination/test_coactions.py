"""Co-actions of each kind on real slices of the shared data: the vectorised engine finds
exactly the edges a plain pairwise comparison finds."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from elshi.coordination import engine
from elshi.coordination.keys import hashtags, links, normalise_url, post_keys, repost_key
from tests.coordination.support import IRA_AUTHORS, Facts, mapped_posts, reference_edges, rows_of


@pytest.fixture(scope="module")
def ira(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Facts]:
    folder = tmp_path_factory.mktemp("ira") / "tweets"
    folder.mkdir()
    for name in IRA_AUTHORS:
        shutil.copy(shared_data / "ira-troll-tweets-sample" / "tweets" / f"{name}.csv.gz", folder)
    shutil.copy(shared_data / "ira-troll-tweets-sample" / "authors.csv", folder.parent)
    return mapped_posts(folder, "ira")


@pytest.fixture(scope="module")
def twarc(shared_data: Path) -> list[Facts]:
    return mapped_posts(
        shared_data / "formats" / "twitter-v2-twarc-csv" / "test-data", "twitter-v2"
    )


@pytest.fixture(scope="module")
def crowdtangle(shared_data: Path) -> list[Facts]:
    path = shared_data / "formats" / "crowdtangle-pycoornet" / "ct_shares_coornet_format.csv"
    return mapped_posts(path, "crowdtangle")


CASES = [
    # (data set, kind, window seconds): each finds edges in its slice.
    ("ira", "repost", 60),
    ("ira", "hashtag", 60),
    ("ira", "hashtag_seq", 60),
    ("ira", "text", 600),
    ("ira", "near_text", 600),
    ("twarc", "repost", 60),
    ("twarc", "reply", 3600),
    ("twarc", "hashtag", 60),
    ("twarc", "near_text", 3600),
    ("crowdtangle", "link", 60),
    ("crowdtangle", "domain", 60),
    ("crowdtangle", "text", 600),
]


@pytest.mark.parametrize(("data", "kind", "window"), CASES)
def test_engine_finds_the_reference_edges(
    request: pytest.FixtureRequest, data: str, kind: str, window: int
) -> None:
    posts: list[Facts] = request.getfixturevalue(data)
    expected = reference_edges(posts, kind, window=window)
    assert expected, f"the {data} slice should have {kind} co-actions within {window} s"
    acts = engine.co_actions(rows_of(posts, kind), window=window, narrow=window / 6)
    assert engine.edges(acts).as_dict() == expected
    strong = engine.edges(acts, min_weight=2).as_dict()
    assert strong == {p: w for p, w in expected.items() if w >= 2}


def test_the_window_is_inclusive_and_bounds_the_pairs(ira: list[Facts]) -> None:
    narrow = reference_edges(ira, "hashtag", window=60)
    wide = reference_edges(ira, "hashtag", window=3600)
    assert set(narrow) < set(wide)
    got = engine.edges(engine.co_actions(rows_of(ira, "hashtag"), window=3600)).as_dict()
    assert got == wide


def test_fast_counts_the_pairs_in_the_narrow_window(twarc: list[Facts]) -> None:
    rows = rows_of(twarc, "repost")
    both = engine.edges(engine.co_actions(rows, window=600, narrow=30))
    fast_only = engine.edges(engine.co_actions(rows, window=30)).as_dict()
    fast = {
        (s, t): f
        for s, t, f in zip(
            both.source.tolist(), both.target.tolist(), both.fast.tolist(), strict=True
        )
    }
    assert {p: w for p, w in fast.items() if w} == fast_only
    assert any(w < both.as_dict()[p] for p, w in fast.items())


def test_incremental_pairs_plus_old_equal_all_pairs(twarc: list[Facts]) -> None:
    rows = rows_of(twarc, "hashtag")
    cut = int(np.median(rows.post))
    old_rows = engine.Rows(
        *(a[rows.post <= cut] for a in (rows.post, rows.account, rows.time_ms, rows.key))
    )
    old = engine.co_actions(old_rows, window=600, narrow=60)
    later = engine.co_actions(
        engine.Rows(rows.post, rows.account, rows.time_ms, rows.key, rows.post > cut),
        window=600,
        narrow=60,
    )
    merged = engine.merge(old, later)
    full = engine.co_actions(rows, window=600, narrow=60)
    assert len(later) and len(old)
    for name in ("post", "account", "partner", "fast"):
        order_m = np.lexsort((merged.partner, merged.post))
        order_f = np.lexsort((full.partner, full.post))
        assert np.array_equal(getattr(merged, name)[order_m], getattr(full, name)[order_f])


def test_updates_in_three_batches_count_each_co_action_once(twarc: list[Facts]) -> None:
    rows = rows_of(twarc, "hashtag")
    cols = (rows.post, rows.account, rows.time_ms, rows.key)
    low, high = (int(c) for c in np.quantile(rows.post, [1 / 3, 2 / 3]))
    weights: dict[tuple[int, int], list[int]] = {}
    posts: dict[int, int] = {}
    for first, last in ((0, low), (low, high), (high, int(rows.post.max()))):
        upto = rows.post <= last
        batch = engine.Rows(*(c[upto] for c in cols), new=rows.post[upto] > first)
        before = engine.Rows(*(c[upto & (rows.post <= first)] for c in cols))
        old = engine.co_actions(before, window=600, narrow=60)
        found = engine.co_actions(batch, window=600, narrow=60)
        added, faster = engine.changes(found, old)
        assert len(added) and (first == 0 or len(faster) < len(found))
        e = engine.edge_changes(added, faster)
        for s, t, w, f in zip(e.source, e.target, e.weight, e.fast, strict=True):
            pair = weights.setdefault((int(s), int(t)), [0, 0])
            pair[0] += int(w)
            pair[1] += int(f)
        for a, n in zip(*engine.participation(found, old), strict=True):
            posts[int(a)] = posts.get(int(a), 0) + int(n)
    full = engine.co_actions(rows, window=600, narrow=60)
    e = engine.edges(full)
    assert weights == {
        (int(s), int(t)): [int(w), int(f)]
        for s, t, w, f in zip(e.source, e.target, e.weight, e.fast, strict=True)
    }
    accounts, counts = engine.participation(full)
    assert posts == dict(zip(accounts.tolist(), counts.tolist(), strict=True))
    assert any(f for _, f in weights.values())


def test_a_key_of_many_accounts_is_paired_in_chunks(
    monkeypatch: pytest.MonkeyPatch, ira: list[Facts]
) -> None:
    rows = rows_of(ira, "hashtag")
    whole = engine.edges(engine.co_actions(rows, window=3600)).as_dict()
    monkeypatch.setattr(engine, "CHUNK_PAIRS", 7)
    assert engine.edges(engine.co_actions(rows, window=3600)).as_dict() == whole


# ---------------------------------------------------------------------------- keys


def test_links_drop_tracking_lower_the_host_and_keep_the_path_case() -> None:
    assert (
        normalise_url("HTTPS://WWW.Example.ORG:443/News/Item/?utm_source=tw&id=7&fbclid=x#top")
        == "www.example.org/News/Item?id=7"
    )
    assert normalise_url("http://example.org/") == normalise_url("https://example.org")
    assert normalise_url("ftp://example.org/file") is None
    assert normalise_url("http://[::1") is None


def test_a_short_link_gives_way_to_the_expansion_the_post_carries() -> None:
    text = "Read this https://t.co/AbC123 now."
    assert links(text) == ["t.co/AbC123"]
    expanded = {
        "urls": [
            {"url": "https://t.co/AbC123", "expanded_url": "https://news.example.kz/a?utm_medium=x"}
        ]
    }
    assert links(text, expanded) == ["news.example.kz/a"]
    carried = {"links": ["https://news.example.kz/b"]}
    assert links(text, carried) == ["news.example.kz/b"]


def test_hashtags_keep_their_order_and_fold_case() -> None:
    assert hashtags("#Kazakhstan and #ҚАЗАҚСТАН, not#this nor #2024 #Astana") == [
        "kazakhstan",
        "қазақстан",
        "astana",
    ]


def test_a_repost_shares_only_its_original() -> None:
    assert repost_key("twitter", "RT @someone: hello #x", None) == "rt|rt @someone: hello #x"
    keys = post_keys(
        platform="mastodon",
        text="hello https://example.org #x",
        repost_of="m.example/1",
        reply_to=None,
        extra={},
        content_hash=42,
    )
    assert keys == [("repost", "mastodon|m.example/1")]
    keys = post_keys(
        platform="twitter",
        text="@a Hello   https://example.org/x?utm_campaign=1 #One #Two",
        repost_of=None,
        reply_to="99",
        extra={},
        content_hash=7,
    )
    assert dict(keys) == {
        "link": "example.org/x",
        "domain": "example.org",
        "hashtag": "two",
        "hashtag_seq": "one two",
        "text": "hello https://example.org/x?utm_campaign=1 #one #two",
        "near_text": "hash:7",  # the text alone is too short: the stored hash stands in
        "reply": "twitter|99",
    }
    assert ("hashtag", "one") in keys


def test_ira_slice_with_the_peer_comparison_parameters(ira: list[Facts]) -> None:
    """co-retweet, co-link and co-tweet, 60 s, minimum edge weight 2: the bench's settings."""
    found = {}
    for kind in ("repost", "link", "text"):
        acts = engine.co_actions(rows_of(ira, kind), window=60)
        found[kind] = engine.edges(acts, min_weight=2).as_dict()
        assert found[kind] == reference_edges(ira, kind, window=60, min_weight=2)
    assert found["repost"]  # the slice has co-retweets at these settings


def test_the_union_of_kinds_is_their_merge(twarc: list[Facts]) -> None:
    union = engine.Union()
    merged = engine.CoActions.empty()
    for kind in ("repost", "hashtag", "reply", "near_text"):
        acts = engine.co_actions(rows_of(twarc, kind), window=600, narrow=60)
        union.add(acts)
        merged = engine.merge(merged, acts)
    got = union.result()
    assert len(got) == len(merged) > 0
    assert engine.edges(got).as_dict() == engine.edges(merged).as_dict()
    assert engine.edges(got).fast.tolist() == engine.edges(merged).fast.tolist()
