"""Inline SVG charts, rendered on the server. Pure: rows in, markup out.

Presentation attributes only (``fill``, ``x``, ...), no ``style``: the
console's Content-Security-Policy allows no inline styles.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from html import escape
from typing import Any

COST = "#3b6fb6"
SAVED = "#3c9a5f"
EXTERNAL = "#c0703a"
ON_PREM = "#3c9a5f"


def _dec(v: Any) -> Decimal:
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return d if d.is_finite() else Decimal(0)


def _money(d: Decimal) -> str:
    if d == 0:
        return "$0"
    if abs(d) < Decimal("0.01"):
        return f"${d:.6f}".rstrip("0")
    return f"${d:,.2f}"


def spend_chart(rows: Sequence[dict[str, Any]], *, width: int = 640, height: int = 220) -> str:
    """Stacked bars per day: spend (bottom) and saved against the baseline (top)."""
    days = sorted(rows, key=lambda r: str(r.get("group")))[-30:]
    if not days:
        return '<p class="empty">No traffic yet.</p>'
    cost = [_dec(r.get("cost_usd")) for r in days]
    saved = [max(_dec(r.get("saved_usd")), Decimal(0)) for r in days]
    top = max((c + s for c, s in zip(cost, saved, strict=True)), default=Decimal(0))
    top = top if top > 0 else Decimal(1)
    left, bottom, right = 70, 30, 10
    plot_w, plot_h = width - left - right, height - bottom - 10
    step = plot_w / len(days)
    bar = min(max(step * 0.6, 2.0), 48.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img"'
        f' aria-label="spend and savings per day" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left}" y1="{10 + plot_h}" x2="{width - right}" y2="{10 + plot_h}"'
        ' stroke="#888" stroke-width="1"/>',
        f'<text x="{left - 6}" y="16" text-anchor="end" font-size="11" fill="#444">'
        f"{escape(_money(top))}</text>",
        f'<text x="{left - 6}" y="{10 + plot_h}" text-anchor="end" font-size="11"'
        ' fill="#444">$0</text>',
    ]
    for i, (r, c, s) in enumerate(zip(days, cost, saved, strict=True)):
        x = left + i * step + (step - bar) / 2
        hc = float(c / top) * plot_h
        hs = float(s / top) * plot_h
        y_c = 10 + plot_h - hc
        label = escape(str(r.get("group")))
        parts.append(
            f'<rect class="bar-cost" x="{x:.1f}" y="{y_c:.1f}" width="{bar:.1f}"'
            f' height="{hc:.1f}" fill="{COST}"><title>{label}: spent {escape(_money(c))}'
            "</title></rect>"
        )
        parts.append(
            f'<rect class="bar-saved" x="{x:.1f}" y="{y_c - hs:.1f}" width="{bar:.1f}"'
            f' height="{hs:.1f}" fill="{SAVED}"><title>{label}: saved {escape(_money(s))}'
            "</title></rect>"
        )
        if len(days) <= 10 or i % max(1, len(days) // 8) == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - 12}" text-anchor="middle"'
                f' font-size="10" fill="#444">{label[5:]}</text>'
            )
    parts.append("</svg>")
    legend = (
        '<p class="legend"><span class="key key-cost"></span> spent '
        '<span class="key key-saved"></span> saved against the strongest route</p>'
    )
    return "".join(parts) + legend


def location_chart(rows: Sequence[dict[str, Any]], *, width: int = 640) -> str:
    """Horizontal bars: requests per location (on-prem, external, none)."""
    data = [(str(r.get("group") or "none"), int(r.get("requests") or 0)) for r in rows]
    if not data:
        return '<p class="empty">No traffic yet.</p>'
    top = max(n for _, n in data) or 1
    row_h, left = 24, 90
    height = row_h * len(data) + 6
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img"'
        ' aria-label="requests by location" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (name, n) in enumerate(data):
        w = (width - left - 60) * n / top
        color = ON_PREM if name == "on_prem" else EXTERNAL if name == "external" else "#999"
        y = 3 + i * row_h
        parts.append(
            f'<text x="{left - 6}" y="{y + 15}" text-anchor="end" font-size="12"'
            f' fill="#333">{escape(name)}</text>'
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{row_h - 6}" fill="{color}"/>'
            f'<text x="{left + w + 4:.1f}" y="{y + 15}" font-size="12" fill="#333">{n}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
