"""Length as each platform counts it, for Kazakh, Russian, Chinese, Arabic and emoji."""

from __future__ import annotations

import pytest

from elshi.speak.text import Limit, graphemes, utf16_length, x_weighted_length


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Қазақстан", 9),  # Kazakh Cyrillic letters are one each
        ("Россия", 6),
        ("中华人民共和国", 7),
        ("مرحبا", 5),
        ("مَرْحَبًا", 5),  # Arabic with harakat: the marks join their letters
        ("👍🏽", 1),  # emoji with a skin tone
        ("👨\u200d👩\u200d👧", 1),  # a family joined by ZWJ
        ("🇰🇿", 1),  # a flag: two regional indicators
        ("e\u0301", 1),  # a combining accent
        ("❤️", 1),  # with variation selector 16
        ("a\r\nb", 3),  # CR LF is one
        ("한국어", 3),
        ("", 0),
    ],
)
def test_graphemes(text: str, expected: int) -> None:
    assert graphemes(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Қазақстан", 9),  # Cyrillic is in the light range
        ("中华人民共和国", 14),  # CJK weighs 2
        ("مرحبا", 5),  # Arabic is light
        ("مَرْحَبًا", 9),  # ...and X counts each harakat code point
        ("👍🏽", 2),  # any emoji sequence weighs 2
        ("👨\u200d👩\u200d👧", 2),
        ("🇰🇿 ok", 5),
        ("e\u0301", 1),  # NFC first: é
        ("“quoted” — dash", 15),  # the general punctuation range is light
        ("see https://example.org/a/very/long/path/that/is/long ok", 4 + 23 + 3),
        ("한국어", 6),
    ],
)
def test_x_weighted_length(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected


def test_utf16_and_limits() -> None:
    assert utf16_length("👍🏽") == 4 and utf16_length("Қазақстан") == 9
    x = Limit(280, "x_weighted")
    assert x.check("中" * 140).ok and not x.check("中" * 141).ok
    assert x.check("Қ" * 280).ok and x.check("Қ" * 281).over == 1
    bsky = Limit(300, "graphemes")
    assert bsky.check("🇰🇿" * 300).ok and not bsky.check("🇰🇿" * 301).ok
    mastodon = Limit(500, "graphemes", urls_as=23)
    assert mastodon.check("a" * 477 + "https://example.org/" + "x" * 200).ok
    assert not Limit(10, "utf16").check("").ok  # empty never fits
