"""Charts drawn by elshi as SVG (no script, no CDN), with PNG and CSV versions of each.

A Chart holds labelled series; `svg()` draws lines (with an optional uncertainty band and marked
days) or horizontal bars, `csv()` gives the numbers behind it, `png()` rasterises the SVG with
cairosvg (the Cairo library; no browser needed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from elshi.web.csv_export import to_csv

WIDTH, HEIGHT = 720, 280
PAD_L, PAD_R, PAD_T, PAD_B = 48, 16, 36, 44
#: Colour-blind-safe (Okabe-Ito) colours, dark enough for 3:1 contrast on white.
PALETTE = ("#0061a8", "#b35c00", "#00795c", "#b8336a", "#5f4b8b", "#6b6b00", "#2a2a2a")
FONT = "DejaVu Sans, Arial, sans-serif"


@dataclass
class Series:
    """One named line or bar set."""

    name: str
    values: list[float | None]
    color: str | None = None
    dashed: bool = False


@dataclass
class Chart:
    """A chart's title, x labels, series and extras (band, marks, highlighted bar)."""

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

    # ------------------------------------------------------------------ drawing

    def svg(self, *, standalone: bool = False) -> str:
        """Return the chart as an SVG document (standalone adds the XML header)."""
        body = self._bars() if self.kind == "bar" else self._lines()
        tid = f"t-{self.slug}"
        did = f"d-{self.slug}"
        height = self._height()
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
            f'width="{WIDTH}" height="{height}" role="img" aria-labelledby="{tid} {did}" '
            f'font-family="{FONT}" font-size="14" class="chart">'
            f'<title id="{tid}">{escape(self.title)}</title>'
            f'<desc id="{did}">{escape(self.description or self._describe())}</desc>'
            f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>'
            f'<text x="{PAD_L}" y="22" font-size="16" font-weight="bold" fill="#1a1a1a">'
            f"{escape(self.title)}</text>"
        )
        prefix = '<?xml version="1.0" encoding="UTF-8"?>\n' if standalone else ""
        return prefix + head + body + "</svg>"

    def _height(self) -> int:
        if self.kind == "bar":
            return PAD_T + 24 * max(1, len(self.labels)) + 16
        return HEIGHT

    def _describe(self) -> str:
        parts = []
        for s in self.series:
            vals = [v for v in s.values if v is not None]
            if vals:
                parts.append(f"{s.name}: {_fmt(min(vals))}–{_fmt(max(vals))}, {_fmt(sum(vals))}")
        return "; ".join(parts)

    def _lines(self) -> str:
        n = len(self.labels)
        values = [v for s in self.series for v in s.values if v is not None]
        if self.band:
            values += [v for v in self.band[1] if v is not None]
        top = _nice(max(values, default=0))
        plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

        def x(i: int) -> float:
            return PAD_L + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

        def y(v: float) -> float:
            return PAD_T + plot_h - (plot_h * v / top if top else 0)

        out = []
        for k in range(5):
            v = top * k / 4
            out.append(
                f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                f'stroke="#d0d0d0" stroke-width="1"/>'
                f'<text x="{PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#333">'
                f"{_fmt(v)}</text>"
            )
        step = max(1, n // 8)
        for i in range(0, n, step):
            # ISO dates lose their year on the axis (the range above the chart has it).
            label = self.labels[i][5:] if len(self.labels[i]) == 10 else self.labels[i]
            out.append(
                f'<text x="{x(i):.1f}" y="{HEIGHT - PAD_B + 16}" text-anchor="middle" '
                f'fill="#333">{escape(label)}</text>'
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
        for i, label in self.marks:
            if 0 <= i < n:
                out.append(
                    f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{PAD_T}" y2="{HEIGHT - PAD_B}" '
                    f'stroke="#8a1c1c" stroke-dasharray="3 3"/>'
                    f'<text x="{x(i) + 3:.1f}" y="{PAD_T + 10}" fill="#8a1c1c" font-size="10">'
                    f"{escape(label[:24])}</text>"
                )
        legend_x = PAD_L
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
            out.append(
                f'<rect x="{legend_x}" y="{HEIGHT - 16}" width="12" height="4" fill="{color}"/>'
                f'<text x="{legend_x + 16}" y="{HEIGHT - 10}" fill="#1a1a1a">'
                f"{escape(s.name)}</text>"
            )
            legend_x += 24 + 7 * len(s.name)
        return "".join(out)

    def _bars(self) -> str:
        values = self.series[0].values if self.series else []
        top = max([v or 0 for v in values], default=0) or 1
        label_w = 200
        plot_w = WIDTH - label_w - PAD_R - 60
        out = []
        for i, (label, v) in enumerate(zip(self.labels, values, strict=True)):
            yy = PAD_T + 24 * i
            w = plot_w * (v or 0) / top
            color = "#b35c00" if label in self.highlight else PALETTE[0]
            out.append(
                f'<text x="{label_w - 6}" y="{yy + 15}" text-anchor="end" fill="#1a1a1a">'
                f"{escape(label[:32])}</text>"
                f'<rect x="{label_w}" y="{yy + 4}" width="{w:.1f}" height="16" fill="{color}"/>'
                f'<text x="{label_w + w + 4:.1f}" y="{yy + 16}" fill="#1a1a1a">{_fmt(v)}</text>'
            )
        return "".join(out)


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


def _nice(v: float) -> float:
    """Round an axis maximum up to 1, 2 or 5 times a power of ten."""
    if v <= 0:
        return 1.0
    import math

    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 5, 10):
        if v <= m * exp:
            return float(m * exp)
    return float(10 * exp)
