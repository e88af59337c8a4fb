"""Panels as one self-contained HTML page: inline CSS, no scripts, no
outside files. A token strip is HTML text (each token a span with its
colour as background and its value as tooltip, so the text can be read,
searched and copied); heatmaps and span plots are the PNG panels, inline
as base64 data URLs.

Example:
    Path("explain.html").write_text(render_html([surprisal, attention], title="runs/tiny: 'ROMEO:'"))
"""

from __future__ import annotations

import base64
import html

import numpy as np

from kerasllm.pictures.panels import TokenValues, visible
from kerasllm.pictures.png import render_png

_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 60em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin-top: 1.6em; }
.tokens { font-family: "DejaVu Sans Mono", monospace; line-height: 1.9; }
.tokens span { padding: 0.1em 0.05em; border: 1px solid #ddd; white-space: pre; }
.scale { font-size: 0.8em; color: #555; }
""".strip()


def _colour(cmap, norm, value: float) -> tuple:
    """(background, text colour) as CSS hex for a value."""
    if not np.isfinite(value):
        return "#ffffff", "#000000"
    r, g, b, _ = cmap(norm(value))
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}", ("#ffffff" if norm(value) > 0.6 else "#000000")


def token_strip_html(panel: TokenValues) -> str:
    """A `TokenValues` panel as HTML: coloured token spans, a line break
    after each newline token, and the colour scale's range.

    Example:
        token_strip_html(TokenValues("s", "S", ["a", "b"], [0.5, 2.0], "surprisal (nats)"))
    """
    import matplotlib
    from matplotlib.colors import Normalize

    low, high = panel.value_range()
    cmap, norm = matplotlib.colormaps[panel.colormap], Normalize(low, high)
    spans = []
    for token, value in zip(panel.tokens, panel.values):
        background, ink = _colour(cmap, norm, value)
        tip = f"{panel.label}: {value:.3f}" if np.isfinite(value) else "no value"
        spans.append(f'<span style="background:{background};color:{ink}" title="{html.escape(tip)}">'
                     f"{html.escape(visible(token))}</span>" + ("<br>" if token.endswith("\n") else ""))
    scale = (f'<p class="scale">colour: {html.escape(panel.label)}, white {low:g} to '
             f'<span style="background:{_colour(cmap, norm, high)[0]}">&nbsp;&nbsp;&nbsp;</span> {high:.3g}; '
             "hover a token for its value</p>")
    return f'<p class="tokens">{"".join(spans)}</p>\n{scale}'


def _image_html(panel) -> str:
    data = base64.b64encode(render_png([panel])).decode("ascii")
    return f'<img alt="{html.escape(panel.title)}" src="data:image/png;base64,{data}">'


def render_html(panels: list, title: str, notes: list = ()) -> str:
    """The panels as one HTML page.

    Args:
        panels: `TokenValues`, `Heatmap` and `SpanProbabilities` panels.
        title: the page's heading.
        notes: lines shown under the heading (e.g. what was left out).

    Example:
        Path("explain.html").write_text(render_html(panels, title="ROMEO:"))
    """
    parts = [f"<h1>{html.escape(title)}</h1>"] + [f"<p>{html.escape(note)}</p>" for note in notes]
    for panel in panels:
        body = token_strip_html(panel) if isinstance(panel, TokenValues) else _image_html(panel)
        parts.append(f"<h2>{html.escape(panel.title)}</h2>\n{body}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>\n{_STYLE}\n</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
