"""Panels drawn as one PNG with matplotlib.

The figure is a `matplotlib.figure.Figure` on the Agg canvas (no pyplot, so
no global backend or figure state: safe in a training callback and without
a display). Its layout is computed in pixels, panel by panel
(`panel_height`), so a picture's size is known before it is drawn
(`png_size`): 800 pixels wide, the panels' heights added.

Example:
    png = render_png([TokenValues("surprisal", "Surprisal", ["T", "o"], [2.1, 0.3], "nats")])
    Path("tokens.png").write_bytes(png)
"""

from __future__ import annotations

import io
import unicodedata
import warnings

import numpy as np

from kerasllm.pictures.panels import Heatmap, SpanProbabilities, TokenValues, visible

DPI = 100
WIDTH = 800  # pixels
MONO = "DejaVu Sans Mono"  # ships with matplotlib: the same glyphs on every machine
CHARS_PER_LINE = 80  # token strips wrap at this many character cells
MAX_LINES = 40  # a longer text is cut in the picture (the JSON has every token)
LINE = 24  # pixels per line of a token strip
TITLE = 34  # pixels above each panel's plot for its title
MARGIN = 24  # pixels left and right of a token strip


def _cells(text: str) -> int:
    """Character cells a label takes in a monospace font (wide East Asian
    characters take two)."""
    return max(sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text), 1)


def wrap_tokens(labels: list, per_line: int = CHARS_PER_LINE) -> list:
    """(line, first cell, cells) of each label laid out in reading order;
    a line break token ends its line.

    Args:
        labels: the tokens as shown (`visible`).
        per_line: character cells per line.

    Example:
        wrap_tokens(["ab", "c"], per_line=3)  # [(0, 0, 2), (1, 0, 1)]
    """
    out, line, x = [], 0, 0
    for label in labels:
        width = min(_cells(label), per_line)
        if x and x + width > per_line:
            line, x = line + 1, 0
        out.append((line, x, width))
        x += width
        if label.endswith(visible("\n")):
            line, x = line + 1, 0
    return out


def _lines(panel: TokenValues) -> int:
    layout = wrap_tokens([visible(t) for t in panel.tokens])
    return min(layout[-1][0] + 1 if layout else 1, MAX_LINES)


def _longest(labels: list, most: int) -> int:
    return min(max((_cells(visible(t)) for t in labels), default=1), most)


def _heatmap_rows_px(panel: Heatmap) -> int:
    return int(np.clip(len(panel.rows) * 16, 160, 800))


def panel_height(panel) -> int:
    """The height in pixels a panel takes in the picture.

    Args:
        panel: a `TokenValues`, `Heatmap` or `SpanProbabilities`.

    Example:
        panel_height(TokenValues("s", "S", ["a"], [1.0], "nats"))  # 90: title, colour bar, one line
    """
    if isinstance(panel, TokenValues):
        return TITLE + 32 + LINE * _lines(panel)
    if isinstance(panel, Heatmap):
        return TITLE + 8 * _longest(panel.columns, 14) + 12 + _heatmap_rows_px(panel) + 16
    if isinstance(panel, SpanProbabilities):
        return TITLE + 200 + 7 * _longest(panel.tokens, 14) + 30
    raise TypeError(f"not a panel: {type(panel).__name__}")


def png_size(panels: list) -> tuple:
    """(width, height) in pixels of `render_png(panels)`.

    Example:
        png_size([panel])  # (800, panel_height(panel))
    """
    return WIDTH, sum(panel_height(p) for p in panels)


def render_png(panels: list) -> bytes:
    """The panels, top to bottom, as PNG bytes (`png_size` pixels).

    Args:
        panels: `TokenValues`, `Heatmap` and `SpanProbabilities` panels.

    Example:
        Path("attention.png").write_bytes(render_png([heatmap]))
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not panels:
        raise ValueError("nothing to draw")
    width, height = png_size(panels)
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    top = height
    for panel in panels:
        h = panel_height(panel)
        region = _Region(figure, width, height, top - h, h)
        figure.text(region.x(10), region.y(h - 8), panel.title, ha="left", va="top", fontsize=10, weight="bold")
        _DRAW[type(panel)](panel, region)
        top -= h
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # A character the fonts lack (CJK in DejaVu) is drawn as a box; the
        # HTML page shows it with the browser's fonts.
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from font")
        figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


class _Region:
    """A panel's band of the figure, in pixels from its bottom left."""

    def __init__(self, figure, width: int, height: int, bottom: int, h: int):
        self.figure, self.width, self.height, self.bottom, self.h = figure, width, height, bottom, h

    def x(self, px: float) -> float:
        return px / self.width

    def y(self, px: float) -> float:
        return (self.bottom + px) / self.height

    def axes(self, left: float, bottom: float, width: float, height: float):
        """Axes at pixels (left, bottom) of the band, `width` x `height`."""
        return self.figure.add_axes((self.x(left), self.y(bottom), width / self.width, height / self.height))


def _colour_bar(region: _Region, mappable, label: str, left: float, bottom: float, width: float, height: float,
                orientation: str):
    axes = region.axes(left, bottom, width, height)
    bar = region.figure.colorbar(mappable, cax=axes, orientation=orientation)
    bar.ax.tick_params(labelsize=7)
    bar.set_label(label, fontsize=8)


def _draw_token_values(panel: TokenValues, region: _Region) -> None:
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    cmap, norm = matplotlib.colormaps[panel.colormap], Normalize(*panel.value_range())
    labels = [visible(t) for t in panel.tokens]
    lines = _lines(panel)
    axes = region.axes(MARGIN, 8, region.width - 2 * MARGIN, LINE * lines)
    axes.set_xlim(0, CHARS_PER_LINE)
    axes.set_ylim(lines, 0)
    axes.axis("off")
    shown = 0
    for label, value, (line, x, cells) in zip(labels, panel.values, wrap_tokens(labels)):
        if line >= lines:
            break
        shown += 1
        colour = cmap(norm(value)) if np.isfinite(value) else (1, 1, 1, 0)
        axes.add_patch(Rectangle((x, line + 0.08), cells, 0.84, facecolor=colour, edgecolor="#bbbbbb", linewidth=0.3))
        dark = np.isfinite(value) and norm(value) > 0.6
        axes.text(x + cells / 2, line + 0.5, label[:cells * 2], ha="center", va="center", fontsize=9, family=MONO,
                  color="white" if dark else "black")
    if shown < len(labels):
        region.figure.text(region.x(region.width - MARGIN), region.y(8 + LINE * lines + 6),
                           f"(first {shown} of {len(labels)} tokens)", ha="right", fontsize=7)
    _colour_bar(region, ScalarMappable(norm, cmap), panel.label, region.width - 300, region.h - 30, 240, 8, "horizontal")


def _tick_labels(axes, which: str, labels: list, fontsize: float, rotation: int = 0) -> None:
    """Every label when they fit, else every k-th."""
    step = max(1, int(np.ceil(len(labels) / 80)))
    positions = list(range(0, len(labels), step))
    shown = [visible(labels[i])[:14] for i in positions]
    if which == "x":
        axes.set_xticks(positions, shown, fontsize=fontsize, rotation=rotation, family=MONO)
    else:
        axes.set_yticks(positions, shown, fontsize=fontsize, family=MONO)


def _label_size(count: int) -> float:
    return 8 if count <= 30 else 6 if count <= 60 else 4.5


def _draw_heatmap(panel: Heatmap, region: _Region) -> None:
    rows_px = _heatmap_rows_px(panel)
    left = 20 + 7 * _longest(panel.rows, 14) + 14
    axes = region.axes(left, 16, region.width - left - 110, rows_px)
    image = axes.imshow(panel.weights, cmap="viridis", aspect="auto", interpolation="nearest", vmin=0.0,
                        vmax=max(float(panel.weights.max(initial=0.0)), 1e-6))
    axes.xaxis.tick_top()
    axes.xaxis.set_label_position("top")
    _tick_labels(axes, "x", panel.columns, _label_size(len(panel.columns)), rotation=90)
    _tick_labels(axes, "y", panel.rows, _label_size(len(panel.rows)))
    axes.set_ylabel(panel.row_label, fontsize=8)
    axes.set_xlabel(panel.column_label, fontsize=8)
    _colour_bar(region, image, "weight", region.width - 80, 16, 12, rows_px, "vertical")


def _draw_span_probabilities(panel: SpanProbabilities, region: _Region) -> None:
    bottom = 7 * _longest(panel.tokens, 14) + 24
    axes = region.axes(60, bottom, region.width - 80, 200)
    positions = np.arange(len(panel.tokens))
    if panel.span is not None:
        axes.axvspan(panel.span[0] - 0.5, panel.span[1] + 0.5, color="#2ca02c", alpha=0.25, label="answer")
    if panel.gold is not None:
        axes.axvspan(panel.gold[0] - 0.5, panel.gold[1] + 0.5, fill=False, hatch="//", edgecolor="#b8860b",
                     linewidth=0.8, label="gold answer")
    axes.bar(positions - 0.2, panel.start, width=0.4, color="#1f77b4", label="start")
    axes.bar(positions + 0.2, panel.end, width=0.4, color="#ff7f0e", label="end")
    axes.set_xlim(-0.5, max(len(panel.tokens), 1) - 0.5)
    axes.set_ylim(0, 1)
    axes.set_ylabel("probability", fontsize=8)
    axes.tick_params(axis="y", labelsize=7)
    _tick_labels(axes, "x", panel.tokens, _label_size(len(panel.tokens)), rotation=90)
    axes.legend(fontsize=7, loc="upper right")


_DRAW = {TokenValues: _draw_token_values, Heatmap: _draw_heatmap, SpanProbabilities: _draw_span_probabilities}
