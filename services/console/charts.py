"""Server-rendered charts: small inline SVG documents built from numbers (no JavaScript).

Every function returns markup safe to embed in the page; all text is escaped. Each mark has
a ``<title>`` so hovering shows the exact value, and charts carry ``data-testid`` attributes
for browser tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from html import escape

from markupsafe import Markup

PALETTE = ("#2f6fde", "#e07b1f", "#2a9d5b", "#c23b3b", "#7b52c7", "#8c6d31", "#d45fae",
           "#4a9fb5", "#6b7280", "#b5a22a")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'
EMPTY_HEIGHT = 40


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def fmt(value: float | None, digits: int = 2) -> str:
    """A compact number: integers as such, 1.2k / 3.4M above ten thousand."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 10_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.1f}k"
    if float(value).is_integer():
        return str(int(value))
    if abs(value) < 10 ** -digits:
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def _svg(width: int, height: int, body: str, testid: str, label: str) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}"'
        f' data-testid="{escape(testid)}">{body}</svg>')


def _empty(width: int, testid: str, label: str, message: str) -> Markup:
    body = (f'<text x="{width // 2}" y="{EMPTY_HEIGHT // 2 + 4}" text-anchor="middle" {FONT}'
            f' fill="#6b7280">{escape(message)}</text>')
    return _svg(width, EMPTY_HEIGHT, body, testid, label)


def hbar_chart(items: Sequence[tuple[str, float | None]], *, testid: str, label: str,
               width: int = 460, unit: str = "", max_value: float | None = None,
               marks: Mapping[str, float] | None = None, empty: str = "no data") -> Markup:
    """Horizontal bars, one per (label, value); ``marks`` draws a tick per label (thresholds)."""
    rows = [(name, value) for name, value in items]
    if not rows:
        return _empty(width, testid, label, empty)
    bar_h, gap, left, right = 16, 6, 150, 70
    height = len(rows) * (bar_h + gap) + gap
    top = max([v or 0 for _, v in rows] + list((marks or {}).values()) + [max_value or 0])
    scale = (width - left - right) / top if top > 0 else 0
    parts = []
    for i, (name, value) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = max(0.0, (value or 0) * scale)
        text = f"{fmt(value)}{unit}"
        parts.append(
            f'<text x="{left - 6}" y="{y + bar_h - 4}" text-anchor="end" {FONT}>'
            f'{escape(_clip(name, 24))}</text>'
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color(i)}" rx="2">'
            f'<title>{escape(name)}: {escape(text)}</title></rect>'
            f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 4}" {FONT}>{escape(text)}</text>')
        if marks and name in marks and scale:
            x = left + marks[name] * scale
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 2}" y2="{y + bar_h + 2}" '
                         f'stroke="#111" stroke-width="2"><title>threshold {fmt(marks[name])}'
                         f'</title></line>')
    return _svg(width, height, "".join(parts), testid, label)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _time_label(ts: float, span: float) -> str:
    moment = datetime.fromtimestamp(ts, timezone.utc)
    return moment.strftime("%H:%M:%S" if span < 86_400 else "%m-%d %H:%M")


def _ticks(low: float, high: float, n: int = 4) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / n
    return [low + i * step for i in range(n + 1)]


def line_chart(series: Sequence[Mapping[str, object]], *, testid: str, label: str,
               width: int = 640, height: int = 220, y_label: str = "",
               time_axis: bool = True, empty: str = "no data yet") -> Markup:
    """Lines over x (epoch seconds when ``time_axis``); each series is ``{"name", "points":
    [(x, y) or (x, y, point label)], "dashed"?}``; points with y None are skipped."""
    clean = []
    for s in series:
        pts = [p for p in s["points"] if p[1] is not None]  # type: ignore[index]
        if pts:
            clean.append((str(s["name"]), pts, bool(s.get("dashed"))))
    if not clean:
        return _empty(width, testid, label, empty)
    left, right, top, bottom = 52, 44, 14, 34 + 14 * ((len(clean) + 3) // 4)
    xs = [p[0] for _, pts, _ in clean for p in pts]
    ys = [p[1] for _, pts, _ in clean for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max(ys)
    if y1 == y0:
        y1 = y0 + 1
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts = [f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
             f'stroke="#ddd"/>']
    for y in _ticks(y0, y1):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
                     f'stroke="#e5e7eb"/><text x="{left - 4}" y="{py(y) + 4:.1f}" '
                     f'text-anchor="end" {FONT}>{escape(fmt(y))}</text>')
    for x in _ticks(x0, x1, 3):
        text = _time_label(x, x1 - x0) if time_axis else fmt(x)
        parts.append(f'<text x="{px(x):.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
                     f'{FONT}>{escape(text)}</text>')
    if y_label:
        parts.append(f'<text x="12" y="{top + plot_h / 2:.1f}" {FONT} text-anchor="middle" '
                     f'transform="rotate(-90 12 {top + plot_h / 2:.1f})">{escape(y_label)}</text>')
    for i, (name, pts, dashed) in enumerate(clean):
        c = color(i)
        coords = " ".join(f"{px(p[0]):.1f},{py(p[1]):.1f}" for p in pts)
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{c}" stroke-width="2"'
                     f'{dash}/>')
        for p in pts:
            tip = p[2] if len(p) > 2 else f"{name}: {fmt(p[1], 4)}"
            parts.append(f'<circle cx="{px(p[0]):.1f}" cy="{py(p[1]):.1f}" r="3" fill="{c}">'
                         f'<title>{escape(str(tip))}</title></circle>')
            if len(p) > 2:
                parts.append(f'<text x="{px(p[0]) + 4:.1f}" y="{py(p[1]) - 6:.1f}" {FONT}>'
                             f'{escape(str(p[2]).split(":")[0])}</text>')
        lx = left + (i % 4) * (plot_w / 4)
        ly = top + plot_h + 28 + 14 * (i // 4)
        parts.append(f'<rect x="{lx:.1f}" y="{ly - 8}" width="10" height="10" fill="{c}"/>'
                     f'<text x="{lx + 14:.1f}" y="{ly + 1}" {FONT}>{escape(_clip(name, 22))}'
                     f'</text>')
    return _svg(width, height, "".join(parts), testid, label)


def column_chart(columns: Sequence[tuple[str, Mapping[str, float]]], keys: Sequence[str], *,
                 testid: str, label: str, width: int = 640, height: int = 200,
                 empty: str = "no batches yet") -> Markup:
    """Stacked columns: one per (label, {key: value}), stacked in ``keys`` order."""
    if not columns:
        return _empty(width, testid, label, empty)
    left, right, top, bottom = 44, 10, 10, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max(sum(float(v.get(k, 0)) for k in keys) for _, v in columns) or 1.0
    slot = plot_w / len(columns)
    bar_w = max(2.0, min(36.0, slot * 0.7))
    parts = [f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" '
             f'stroke="#999"/>']
    for y in _ticks(0, top_value):
        yy = top + plot_h - y / top_value * plot_h
        parts.append(f'<text x="{left - 4}" y="{yy + 4:.1f}" text-anchor="end" {FONT}>'
                     f'{escape(fmt(y))}</text>')
    for i, (name, values) in enumerate(columns):
        x = left + i * slot + (slot - bar_w) / 2
        base = top + plot_h
        for k, key in enumerate(keys):
            v = float(values.get(key, 0))
            h = v / top_value * plot_h
            base -= h
            parts.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{color(k)}"><title>{escape(name)} {escape(key)}: {fmt(v)}'
                         f'</title></rect>')
        if len(columns) <= 24 or i % max(1, len(columns) // 12) == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 13}" '
                         f'text-anchor="middle" {FONT}>{escape(_clip(name, 8))}</text>')
    for k, key in enumerate(keys):
        lx = left + k * 90
        parts.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{color(k)}"/>'
                     f'<text x="{lx + 14}" y="{height - 5}" {FONT}>{escape(key)}</text>')
    return _svg(width, height, "".join(parts), testid, label)


def progress(fill: float | None, *, testid: str, label: str, width: int = 260,
             text: str = "") -> Markup:
    """A horizontal gauge from 0 to 1 (None: unknown)."""
    height = 22
    inner = 0.0 if fill is None else max(0.0, min(1.0, fill)) * (width - 2)
    shade = "#2a9d5b" if (fill or 0) < 1 else "#e07b1f"
    caption = text or ("unknown" if fill is None else f"{fill * 100:.0f}%")
    body = (f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="#f3f4f6" '
            f'stroke="#d1d5db" rx="3"/><rect x="1" y="1" width="{inner:.1f}" height="{height - 2}"'
            f' fill="{shade}" rx="3"><title>{escape(caption)}</title></rect>'
            f'<text x="{width / 2:.0f}" y="15" text-anchor="middle" {FONT}>{escape(caption)}'
            f'</text>')
    return _svg(width, height, body, testid, label)


def sparkline(values: Sequence[float | None], *, testid: str, label: str, width: int = 120,
              height: int = 22) -> Markup:
    """A tiny line of recent values (no axes)."""
    pts = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(pts) < 2:
        return _svg(width, height, "", testid, label)
    top = max(v for _, v in pts) or 1.0
    n = max(1, len(values) - 1)
    coords = " ".join(f"{i / n * (width - 2) + 1:.1f},{height - 2 - v / top * (height - 4):.1f}"
                      for i, v in pts)
    body = (f'<polyline points="{coords}" fill="none" stroke="{PALETTE[0]}" stroke-width="1.5">'
            f'<title>{escape(label)}: last {fmt(pts[-1][1])}</title></polyline>')
    return _svg(width, height, body, testid, label)
