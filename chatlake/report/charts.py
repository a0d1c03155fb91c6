"""Charts as inline SVG: pure functions, data in, markup out. No JavaScript and no CDN, so the report is one
file that opens offline and renders the same everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ["#2a9d8f", "#e76f51", "#264653", "#e9c46a", "#8ab17d", "#f4a261", "#6d597a", "#b56576"]
# Text first, then the emoji fonts of macOS, Windows and Linux: chat titles and message texts carry emoji, which
# the text fonts lack (without an emoji font installed, a browser draws a box). One stack for the page and the charts.
FONT_FAMILY = ('system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif, '
               '"Apple Color Emoji", "Segoe UI Emoji", "Noto Color Emoji"')
FONT = f"font-family='{FONT_FAMILY}' font-size=\"12\""


def plural(n: float, noun: str, nouns: str | None = None) -> str:
    """`noun` for exactly one, else `nouns` (default `noun` + "s"): "1 message", "0 messages", "2.5 messages"."""
    return noun if n == 1 else nouns or noun + "s"


def counted(n: int, noun: str, nouns: str | None = None) -> str:
    """A count and its noun in agreement, with thousands separators: "1 delivery", "1,204 deliveries"."""
    return f"{n:,} {plural(n, noun, nouns)}"


def _fmt(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _empty(width: int, height: int, message: str = "no data for this period") -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" {FONT}>'
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#888">{escape(message)}</text></svg>')


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value`."""
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def stacked_bars(categories: Sequence[str], series: dict[str, Sequence[float]], title: str,
                 width: int = 760, height: int = 280) -> str:
    """Vertical bars per category, one stacked segment per series (e.g. messages per day per source)."""
    if not categories:
        return _empty(width, height)
    left, right, top, bottom = 48, 16, 28, 56
    totals = [sum(s[i] for s in series.values()) for i in range(len(categories))]
    top_value = _nice_max(max(totals))
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / len(categories)
    bar_w = max(2.0, slot * 0.7)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" {FONT}>']
    for tick in range(5):
        value = top_value * tick / 4
        y = top + plot_h - plot_h * tick / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{_fmt(value)}</text>')
    label_every = max(1, len(categories) // 12)
    for i, category in enumerate(categories):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        for j, (name, values) in enumerate(series.items()):
            h = plot_h * values[i] / top_value
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(category)} {escape(name)}: '
                         f'{values[i]:g}</title></rect>')
        if i % label_every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                         f'fill="#555">{escape(category)}</text>')
    for j, name in enumerate(series):
        x = left + j * 130
        parts.append(f'<rect x="{x}" y="{height - 22}" width="12" height="12" fill="{PALETTE[j % len(PALETTE)]}"/>'
                     f'<text x="{x + 18}" y="{height - 12}" fill="#333">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def horizontal_bars(items: Sequence[tuple[str, float]], title: str, width: int = 760, noun: str = "") -> str:
    """One labelled bar per item, in the order given (e.g. the message-type mix, a funnel); each value is
    followed by `noun` in agreement with it ("1 message", "3 messages") when one is given."""
    if not items:
        return _empty(width, 120)
    label_w, right, row = 150, 70 + 7 * len(noun), 24
    height = 12 + row * len(items)
    top_value = max(v for _, v in items) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" {FONT}>']
    for i, (label, value) in enumerate(items):
        y = 6 + i * row
        w = (width - label_w - right) * value / top_value
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" fill="#333">{escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" '
                     f'fill="{PALETTE[i % len(PALETTE)]}"/>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" fill="#333">{_fmt(value)}'
                     f'{escape(" " + plural(value, noun)) if noun else ""}</text>')
    parts.append("</svg>")
    return "".join(parts)


def heatmap(rows: Sequence[str], columns: Sequence[str], values: dict[tuple[str, str], float], title: str,
            width: int = 760) -> str:
    """A grid of cells shaded by value (e.g. messages per weekday and hour)."""
    if not values:
        return _empty(width, 200)
    left, top, cell_h = 44, 20, 22
    cell_w = (width - left - 8) / len(columns)
    height = top + cell_h * len(rows) + 8
    top_value = max(values.values()) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" {FONT}>']
    for j, column in enumerate(columns):
        parts.append(f'<text x="{left + j * cell_w + cell_w / 2:.1f}" y="{top - 6}" text-anchor="middle" '
                     f'fill="#555">{escape(column)}</text>')
    for i, row in enumerate(rows):
        y = top + i * cell_h
        parts.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end" fill="#555">{escape(row)}</text>')
        for j, column in enumerate(columns):
            value = values.get((row, column), 0)
            shade = 0.06 + 0.94 * value / top_value if value else 0.0
            parts.append(f'<rect x="{left + j * cell_w:.1f}" y="{y}" width="{cell_w - 1:.1f}" height="{cell_h - 1}" '
                         f'fill="{PALETTE[0]}" fill-opacity="{shade:.2f}" stroke="#f4f4f4">'
                         f'<title>{escape(row)} {escape(column)}: {value:g}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)
