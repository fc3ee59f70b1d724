"""Dashboard charts: readable type at the size shown, whole-number ticks for counts, labels
that neither overlap nor fall off the edge, tooltips and a table for screen readers."""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET

import pytest

from elshi.web.charts import (
    SIZES,
    WIDE_FROM,
    Box,
    Chart,
    Series,
    axis_positions,
    layout_legend,
    nice_ticks,
    text_width,
)

SVG = "{http://www.w3.org/2000/svg}"
LONG_KK = [
    "жағымсыз пікірлер",
    "бейтарап",
    "жағымды пікірлер",
    "келесі 7 күнге арналған болжам",
    "болжамның 80% ауқымы",
    "Қазақстан Республикасының Сыртқы істер министрлігі",
]


def _is_nice(step: float) -> bool:
    power = 10 ** math.floor(math.log10(step))
    return any(math.isclose(step, m * power) for m in (1, 2, 5, 10))


@pytest.mark.parametrize("top", [0, 1, 2, 3, 4, 5, 7, 9, 11, 17, 24, 99, 101, 333, 1000, 12345])
def test_count_ticks_are_whole_nice_and_cover_the_top(top: int) -> None:
    ticks = nice_ticks(top, counts=True)
    assert ticks[0] == 0 and ticks[-1] >= top
    assert all(float(v).is_integer() for v in ticks)
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1 and _is_nice(steps.pop())
    assert 2 <= len(ticks) <= 7


def test_small_counts_never_get_fractional_ticks() -> None:
    assert nice_ticks(3) == [0, 1, 2, 3]
    assert nice_ticks(1) == [0, 1]
    assert nice_ticks(0.4) == [0, 1]  # a forecast of 0.4 posts still reads in whole posts


def test_shares_may_have_fractional_ticks() -> None:
    assert nice_ticks(0.4, counts=False) == [0, 0.1, 0.2, 0.3, 0.4]
    assert nice_ticks(0.37, counts=False)[-1] >= 0.37


@pytest.mark.parametrize("size", ["wide", "narrow"])
def test_long_kazakh_legend_items_wrap_without_overlapping(size: str) -> None:
    width, font = SIZES[size]
    boxes = layout_legend(LONG_KK, width - 16, font, x0=8, y0=100)
    assert len(boxes) == len(LONG_KK)
    for i, a in enumerate(boxes):
        assert a.x >= 8 and a.x + a.w <= width - 8 + 0.01
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    assert len({b.y for b in boxes}) > 1  # it did wrap


def test_box_overlap() -> None:
    assert Box(0, 0, 10, 10).overlaps(Box(5, 5, 10, 10))
    assert not Box(0, 0, 10, 10).overlaps(Box(10, 0, 10, 10))


def test_axis_labels_are_spaced_so_they_do_not_touch() -> None:
    labels = [f"11-{d:02d}" for d in range(1, 31)]
    for size in SIZES:
        width, font = SIZES[size]
        room = width - 60
        shown = axis_positions(labels, room, font)
        assert shown[0] == 0 and len(shown) >= 3
        gap = room / (len(labels) - 1) * (shown[1] - shown[0])
        assert gap >= text_width("11-30", font)


def _chart(kind: str = "line") -> Chart:
    days = [f"2026-11-{d:02d}" for d in range(1, 31)]
    if kind == "bar":
        return Chart(
            "languages",
            "Тіл бойынша жарияланымдар · Қазақстан–Қытай қарым-қатынасы",
            LONG_KK,
            [Series("жарияланымдар", [120.0, 33.0, 7.0, 3.0, 1.0, 0.0])],
            kind="bar",
            label_heading="Тіл",
        )
    return Chart(
        "volume",
        "Күніне жарияланымдар · Қазақстан–Қытай қарым-қатынасы мен шекара мәселелері",
        days,
        [
            Series(LONG_KK[0], [float(i % 3) for i in range(30)]),
            Series(LONG_KK[3], [None] * 27 + [1.0, 2.0, 2.0], dashed=True),
        ],
        band=([None] * 27 + [0.0, 1.0, 1.0], [None] * 27 + [2.0, 3.0, 4.0]),
        band_name=LONG_KK[4],
        marks=[(3, "Мемлекеттік сапар Пекинге"), (4, "Саммит")],
        label_heading="Күн",
    )


def _texts(root: ET.Element) -> list[tuple[float, float, str, float, str]]:
    """(x, y, anchor, font size, text) of every text element."""
    base = float(root.get("font-size") or 0)
    out = []
    for el in root.iter(f"{SVG}text"):
        size = float(el.get("font-size") or base)
        out.append(
            (
                float(el.get("x") or 0),
                float(el.get("y") or 0),
                el.get("text-anchor") or "start",
                size,
                el.text or "",
            )
        )
    return out


@pytest.mark.parametrize("kind", ["line", "bar"])
@pytest.mark.parametrize("size", ["wide", "narrow"])
def test_drawings_keep_text_readable_and_inside(kind: str, size: str) -> None:
    chart = _chart(kind)
    root = ET.fromstring(chart.svg(size=size))
    width = float(root.get("viewBox", "").split()[2])
    height = float(root.get("viewBox", "").split()[3])
    # The narrowest column each drawing is shown in: the wide one from WIDE_FROM pixels, the
    # narrow one in a phone's column (360 px screen less the page's and the card's padding).
    shown_at = WIDE_FROM if size == "wide" else 300
    for x, y, anchor, font, text in _texts(root):
        assert font * shown_at / width >= 12, (text, font)
        w = text_width(text, font)
        left = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
        assert left >= 0 and left + w <= width + 0.5, (text, left, w, width)
        assert font * 0.8 <= y <= height, (text, y)


def test_line_chart_has_a_tooltip_per_day_and_a_table() -> None:
    chart = _chart()
    root = ET.fromstring(chart.svg(size="narrow"))
    tips = [
        t.text or ""
        for r in root.iter(f"{SVG}rect")
        if r.get("class") == "hit"
        for t in r.iter(f"{SVG}title")
    ]
    assert len(tips) == 30
    assert tips[28] == (f"2026-11-29 — {LONG_KK[0]}: 1; {LONG_KK[3]}: 2; {LONG_KK[4]}: 1–3")
    table = chart.table()
    assert '<th scope="col">Күн</th>' in table and "<td>1–3</td>" not in table
    assert '<th scope="row">2026-11-29</th><td>1</td><td>2</td><td>1</td><td>3</td>' in table
    html = chart.html()
    assert html.count("<svg") == 2 and 'class="chart-table"' in html
    # The two drawings' title ids differ, so a page never repeats an id.
    assert 'id="t-volume-wide"' in html and 'id="t-volume-narrow"' in html


def test_bar_chart_gives_each_bar_its_full_label_and_value() -> None:
    chart = _chart("bar")
    root = ET.fromstring(chart.svg(size="narrow"))
    tips = [t.text for g in root.iter(f"{SVG}g") for t in g.iter(f"{SVG}title")]
    assert f"{LONG_KK[5]}: 0" in tips and f"{LONG_KK[0]}: 120" in tips
    shown = [text for *_, text in _texts(root)]
    assert any(s.endswith("…") and LONG_KK[5].startswith(s[:-1]) for s in shown)
    assert "120" in shown
