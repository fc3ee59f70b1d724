"""Charts drawn by elshi as SVG (no script, no CDN), with PNG and CSV versions of each.

A Chart holds labelled series; `svg()` draws lines (with an optional uncertainty band and marked
days) or horizontal bars, `csv()` gives the numbers behind it, `png()` rasterises the SVG with
cairosvg (the Cairo library; no browser needed).

An SVG scales its text with its width, so each chart is drawn twice for a page: a wide drawing
for wide columns and a narrow one for phones and narrow columns; the stylesheet shows the one
that fits its column (a container query), so chart text stays at 12 CSS pixels or more. Margins
are measured from the labels, ticks are 1, 2 or 5 times a power of ten (whole numbers for
counts), legends wrap onto more lines, and every day or bar has a tooltip (an SVG title) with
its numbers. `html()` also adds the numbers as a table that only screen readers read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

from elshi.web.csv_export import to_csv

#: Drawing width (SVG units) and font size of each drawing; a page shows "wide" in columns of
#: at least WIDE_FROM CSS pixels (13 × 680 / 720 ≥ 12 px) and "narrow" below (15 × 300 / 360
#: ≥ 12 px down to a 300 px column, a phone's).
SIZES = {"wide": (720, 13), "narrow": (360, 15)}
WIDE_FROM = 680
#: Kept for callers that ask for the download size.
WIDTH = SIZES["wide"][0]
#: Colour-blind-safe (Okabe-Ito) colours, dark enough for 3:1 contrast on white.
PALETTE = ("#0061a8", "#b35c00", "#00795c", "#b8336a", "#5f4b8b", "#6b6b00", "#2a2a2a")
FONT = "DejaVu Sans, Arial, sans-serif"
INK, MUTED, GRID, MARK = "#1a1a1a", "#333333", "#d0d0d0", "#8a1c1c"


@dataclass
class Series:
    """One named line or bar set."""

    name: str
    values: list[float | None]
    color: str | None = None
    dashed: bool = False


@dataclass(frozen=True)
class Box:
    """A laid-out piece of text (or swatch and text): its left, top, width and height."""

    x: float
    y: float
    w: float
    h: float

    def overlaps(self, other: Box) -> bool:
        """Whether the two boxes share any area."""
        return (
            self.x < other.x + other.w
            and other.x < self.x + self.w
            and self.y < other.y + other.h
            and other.y < self.y + self.h
        )


@dataclass
class Chart:
    """A chart's title, x labels, series and extras (band, marks, highlighted bar).

    `counts` says the values count things (posts, accounts): the value axis then only has
    whole-number ticks. `label_heading` heads the label column of the screen-reader table.
    """

    slug: str
    title: str
    labels: list[str]
    series: list[Series]
    kind: str = "line"
    band: tuple[list[float | None], list[float | None]] | None = None
    band_name: str = ""
    marks: list[tuple[int, str]] = field(default_factory=list)
    highlight: set[str] = field(default_factory=set)
    description: str = ""
    counts: bool = True
    label_heading: str = ""

    # ------------------------------------------------------------------ data

    def csv(self) -> str:
        """Return the numbers behind the chart as CSV (one row per label)."""
        head = ["label", *[s.name for s in self.series]]
        if self.band:
            head += [f"{self.band_name} low", f"{self.band_name} high"]
        rows = []
        for i, label in enumerate(self.labels):
            row: list[object] = [label, *[_number(s.values[i]) for s in self.series]]
            if self.band:
                row += [_number(self.band[0][i]), _number(self.band[1][i])]
            rows.append(row)
        return to_csv(head, rows)

    def png(self, scale: float = 2.0) -> bytes:
        """Return the chart as PNG."""
        import cairosvg

        data: bytes = cairosvg.svg2png(bytestring=self.svg(standalone=True).encode(), scale=scale)
        return data

    def table(self) -> str:
        """Return the numbers as an HTML table for screen readers (hidden from sight)."""
        head = [self.label_heading, *[s.name for s in self.series]]
        if self.band:
            head += [f"{self.band_name} ↓", f"{self.band_name} ↑"]
        out = [f'<table class="chart-table"><caption>{escape(self.title)}</caption><tr>']
        out += [f'<th scope="col">{escape(h)}</th>' for h in head]
        out.append("</tr>")
        for i, label in enumerate(self.labels):
            cells = [_fmt(s.values[i]) for s in self.series]
            if self.band:
                cells += [_fmt(self.band[0][i]), _fmt(self.band[1][i])]
            if not any(cells):
                continue
            out.append(f'<tr><th scope="row">{escape(label)}</th>')
            out += [f"<td>{c}</td>" for c in cells]
            out.append("</tr>")
        out.append("</table>")
        return "".join(out)

    def html(self) -> str:
        """Return what a page shows: both drawings (the stylesheet picks one) and the table."""
        return (
            f'<div class="chart-wide">{self.svg(size="wide")}</div>'
            f'<div class="chart-narrow">{self.svg(size="narrow")}</div>'
            f"{self.table()}"
        )

    # ------------------------------------------------------------------ drawing

    def svg(self, *, standalone: bool = False, size: str = "wide") -> str:
        """Return the chart as an SVG document (standalone adds the XML header)."""
        width, font = SIZES[size]
        tid = f"t-{self.slug}-{size}"
        did = f"d-{self.slug}-{size}"
        title_lines = wrap(self.title, width - 16, font + 2)
        top = 8 + len(title_lines) * line_height(font + 2) + font * 0.6
        title = "".join(
            f'<text x="8" y="{8 + (k + 1) * line_height(font + 2) - 6:.1f}" '
            f'font-size="{font + 2}" font-weight="bold" fill="{INK}">{escape(line)}</text>'
            for k, line in enumerate(title_lines)
        )
        if self.kind == "bar":
            body, height = self._bars(width, font, top)
        else:
            body, height = self._lines(width, font, top)
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height:.0f}" '
            f'width="{width}" height="{height:.0f}" role="img" aria-labelledby="{tid} {did}" '
            f'font-family="{FONT}" font-size="{font}" class="chart chart-{size}">'
            f'<title id="{tid}">{escape(self.title)}</title>'
            f'<desc id="{did}">{escape(self.description or self._describe())}</desc>'
            f'<rect width="{width}" height="{height:.0f}" fill="#ffffff"/>'
        )
        prefix = '<?xml version="1.0" encoding="UTF-8"?>\n' if standalone else ""
        return prefix + head + title + body + "</svg>"

    def _describe(self) -> str:
        parts = []
        for s in self.series:
            vals = [v for v in s.values if v is not None]
            if vals:
                parts.append(f"{s.name}: {_fmt(min(vals))}–{_fmt(max(vals))}, {_fmt(sum(vals))}")
        return "; ".join(parts)

    def _lines(self, width: int, font: int, top: float) -> tuple[str, float]:
        n = len(self.labels)
        values = [v for s in self.series for v in s.values if v is not None]
        if self.band:
            values += [v for v in self.band[1] if v is not None]
        ticks = nice_ticks(max(values, default=0), counts=self.counts)
        tick_text = [_fmt(v) for v in ticks]
        axis = [_axis_label(label) for label in self.labels]
        first_w = text_width(axis[0], font) if axis else 0
        last_w = text_width(axis[-1], font) if axis else 0
        pad_l = max(max(text_width(tick, font) for tick in tick_text) + 10, first_w / 2 + 4)
        pad_r = max(12.0, last_w / 2 + 4)
        marks = sorted((i, label) for i, label in self.marks if 0 <= i < n)
        mark_y = top + font * 0.8
        if marks:  # a strip above the plot for the marked days' names
            top += font + 6
        plot_h = 150 if width < 500 else 170
        plot_w = width - pad_l - pad_r
        bottom = top + plot_h
        peak = ticks[-1] or 1

        def x(i: int) -> float:
            return pad_l + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

        def y(v: float) -> float:
            return bottom - plot_h * v / peak

        out = []
        for v, tick in zip(ticks, tick_text, strict=True):
            out.append(
                f'<line x1="{pad_l:.1f}" x2="{width - pad_r:.1f}" y1="{y(v):.1f}" '
                f'y2="{y(v):.1f}" stroke="{GRID}" stroke-width="1"/>'
                f'<text x="{pad_l - 6:.1f}" y="{y(v) + font * 0.35:.1f}" text-anchor="end" '
                f'fill="{MUTED}">{tick}</text>'
            )
        for i in axis_positions(axis, plot_w, font):
            out.append(
                f'<text x="{x(i):.1f}" y="{bottom + font + 6:.1f}" text-anchor="middle" '
                f'fill="{MUTED}">{escape(axis[i])}</text>'
            )
        if self.band:
            lo, hi = self.band
            idx = [i for i in range(n) if lo[i] is not None and hi[i] is not None]
            if idx:
                pts = [f"{x(i):.1f},{y(hi[i] or 0):.1f}" for i in idx]
                pts += [f"{x(i):.1f},{y(lo[i] or 0):.1f}" for i in reversed(idx)]
                out.append(
                    f'<polygon points="{" ".join(pts)}" fill="#0061a8" fill-opacity="0.15" '
                    f'stroke="none"><title>{escape(self.band_name)}</title></polygon>'
                )
        for k, (i, label) in enumerate(marks):
            room = (x(marks[k + 1][0]) if k + 1 < len(marks) else width - pad_r) - x(i) - 6
            short = fit(label, room, font)
            out.append(
                f"<g><title>{escape(self.labels[i])}: {escape(label)}</title>"
                f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{mark_y - font:.1f}" '
                f'y2="{bottom:.1f}" stroke="{MARK}" stroke-dasharray="3 3"/>'
                + (
                    f'<text x="{x(i) + 3:.1f}" y="{mark_y:.1f}" fill="{MARK}">'
                    f"{escape(short)}</text>"
                    if short
                    else ""
                )
                + "</g>"
            )
        for k, s in enumerate(self.series):
            color = s.color or PALETTE[k % len(PALETTE)]
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            segments: list[list[str]] = [[]]
            for i, val in enumerate(s.values):
                if val is None:
                    segments.append([])
                else:
                    segments[-1].append(f"{x(i):.1f},{y(val):.1f}")
            for seg in segments:
                if len(seg) > 1:
                    out.append(
                        f'<polyline points="{" ".join(seg)}" fill="none" stroke="{color}" '
                        f'stroke-width="2"{dash}/>'
                    )
                elif len(seg) == 1:
                    cx, cy = seg[0].split(",")
                    out.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
        # One invisible column per label: hovering it shows that day's numbers.
        slot = plot_w / (n - 1) if n > 1 else plot_w
        for i, label in enumerate(self.labels):
            tip = self._tip(i)
            if not tip:
                continue
            left = max(pad_l, x(i) - slot / 2)
            right = min(width - pad_r, x(i) + slot / 2)
            out.append(
                f'<rect class="hit" x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" '
                f'height="{plot_h}" fill="#000000" fill-opacity="0">'
                f"<title>{escape(label)} — {escape(tip)}</title></rect>"
            )
        # The legend, wrapped onto as many lines as it needs.
        items = [s.name for s in self.series]
        if self.band and self.band_name:
            items.append(self.band_name)
        legend_top = bottom + font + 14
        boxes = layout_legend(items, width - 16, font, x0=8, y0=legend_top)
        for k, (name, box) in enumerate(zip(items, boxes, strict=True)):
            if k < len(self.series):
                s = self.series[k]
                color = s.color or PALETTE[k % len(PALETTE)]
                swatch = (
                    f'<line x1="{box.x:.1f}" x2="{box.x + SWATCH:.1f}" '
                    f'y1="{box.y + box.h / 2:.1f}" y2="{box.y + box.h / 2:.1f}" '
                    f'stroke="{color}" stroke-width="3"'
                    + (' stroke-dasharray="4 3"' if s.dashed else "")
                    + "/>"
                )
            else:
                swatch = (
                    f'<rect x="{box.x:.1f}" y="{box.y + 2:.1f}" width="{SWATCH}" '
                    f'height="{box.h - 4:.1f}" fill="#0061a8" fill-opacity="0.15"/>'
                )
            label = fit(name, box.w - SWATCH - 6, font)
            out.append(
                swatch
                + f'<text x="{box.x + SWATCH + 6:.1f}" y="{box.y + box.h / 2 + font * 0.35:.1f}" '
                f'fill="{INK}">{escape(label)}</text>'
            )
        height = (max(b.y + b.h for b in boxes) if boxes else legend_top) + 8
        return "".join(out), height

    def _tip(self, i: int) -> str:
        parts = [f"{s.name}: {_fmt(s.values[i])}" for s in self.series if s.values[i] is not None]
        if self.band and self.band[0][i] is not None and self.band[1][i] is not None:
            parts.append(f"{self.band_name}: {_fmt(self.band[0][i])}–{_fmt(self.band[1][i])}")
        return "; ".join(parts)

    def _bars(self, width: int, font: int, top: float) -> tuple[str, float]:
        values = self.series[0].values if self.series else []
        peak = max([v or 0 for v in values], default=0) or 1
        row = round(font * 1.9)
        value_w = max((text_width(_fmt(v), font) for v in values), default=0) + 8
        label_w = min(
            max((text_width(label, font) for label in self.labels), default=0) + 10,
            width * 0.42,
        )
        plot_w = max(20.0, width - label_w - value_w - 8)
        out = []
        for i, (label, v) in enumerate(zip(self.labels, values, strict=True)):
            yy = top + row * i
            w = plot_w * (v or 0) / peak
            color = "#b35c00" if label in self.highlight else PALETTE[0]
            text_y = yy + row / 2 + font * 0.35
            out.append(
                f"<g><title>{escape(label)}: {_fmt(v)}</title>"
                f'<text x="{label_w - 6:.1f}" y="{text_y:.1f}" text-anchor="end" fill="{INK}">'
                f"{escape(fit(label, label_w - 10, font))}</text>"
                f'<rect x="{label_w:.1f}" y="{yy + row * 0.18:.1f}" width="{w:.1f}" '
                f'height="{row * 0.64:.1f}" fill="{color}"/>'
                f'<text x="{label_w + w + 4:.1f}" y="{text_y:.1f}" fill="{INK}">{_fmt(v)}</text>'
                "</g>"
            )
        return "".join(out), top + row * max(1, len(self.labels)) + 10


# ---------------------------------------------------------------------- layout helpers

SWATCH = 16


def line_height(font: float) -> float:
    """Return the height of one line of text at this size."""
    return font * 1.45


def text_width(text: str, font: float) -> float:
    """Estimate the width of a text at a font size, leaning wide (DejaVu Sans is wide).

    Without the font at hand, letters are measured by kind; the estimate is meant to be at
    least the real width, so that what is laid out apart stays apart.
    """
    em = 0.0
    for ch in text:
        if ch in " .,:;'|!()[]iljtfrІі":
            em += 0.4
        elif ch in "mwMWШЩЖЮшщжюМмЫы—%@":
            em += 0.95
        elif ord(ch) >= 0x2E80:
            em += 1.0
        elif ch.isupper():
            em += 0.76
        elif ch.isdigit():
            em += 0.64
        else:
            em += 0.64
    return em * font


def fit(text: str, room: float, font: float) -> str:
    """Return the text, shortened with an ellipsis to fit `room` (empty when nothing fits)."""
    if text_width(text, font) <= room + 0.01:
        return text
    for k in range(len(text) - 1, 0, -1):
        short = text[:k].rstrip() + "…"
        if text_width(short, font) <= room + 0.01:
            return short
    return ""


def wrap(text: str, room: float, font: float) -> list[str]:
    """Break a text into lines of at most `room` wide (a too-long word is shortened)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if text_width(candidate, font) <= room or not line:
            line = candidate
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return [fit(x, room, font) or x[:1] for x in lines] or [""]


def layout_legend(
    names: list[str], room: float, font: float, *, x0: float = 0, y0: float = 0
) -> list[Box]:
    """Place legend items (swatch, gap, name) left to right, starting a new line when the next
    one does not fit; an item wider than the line gets a line of its own, shortened to it."""
    boxes: list[Box] = []
    h = line_height(font)
    x, y = x0, y0
    for name in names:
        w = min(SWATCH + 6 + text_width(name, font), room)
        if x > x0 and x + w > x0 + room:
            x, y = x0, y + h + 4
        boxes.append(Box(x, y, w, h))
        x += w + 18
    return boxes


def axis_positions(labels: list[str], room: float, font: float) -> list[int]:
    """Return which labels to write along an axis `room` wide so that none touch:
    every k-th, k as small as that allows."""
    n = len(labels)
    if n <= 1:
        return list(range(n))
    widest = max(text_width(label, font) for label in labels) + font
    slot = room / (n - 1)
    step = max(1, math.ceil(widest / slot))
    return list(range(0, n, step))


def nice_ticks(top: float, *, counts: bool = True, target: int = 5) -> list[float]:
    """Return value-axis ticks from 0 to at least `top`, about `target` of them, a step of 1, 2
    or 5 times a power of ten; for counts the step is a whole number (never 0.5 posts)."""
    if not top or top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / max(1, target - 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = 10 * power
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            step = m * power
            break
    if counts:
        step = max(1.0, float(round(step)))
    count = math.ceil(top / step - 1e-9)
    digits = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return [round(step * k, digits) for k in range(count + 1)]


def _axis_label(label: str) -> str:
    # ISO dates lose their year on the axis (the range above the chart has it).
    return label[5:] if len(label) == 10 and label[4] == "-" else label


def _number(v: float | None) -> int | float | str:
    """A CSV cell: the number (spreadsheets read it as one), or empty."""
    if v is None:
        return ""
    return int(v) if float(v).is_integer() else round(float(v), 3)


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    if float(v).is_integer():
        return str(int(v))
    return f"{v:.3f}".rstrip("0").rstrip(".")
