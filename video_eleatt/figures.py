"""Figure helpers shared by every layer that draws: a pyplot-free figure and its PNG file.

matplotlib's ``pyplot`` keeps global state (the current figure, the backend); these figures
live on their own Agg canvas, so they are safe in threads and worker processes and need no
display. matplotlib is imported when a figure is made, not when this module is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def new_figure(width: float, height: float) -> Any:
    """A pyplot-free ``matplotlib.figure.Figure`` (inches) on an Agg canvas, at 110 dpi."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: Path) -> Path:
    """Write ``figure`` as PNG (parent folders created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, bbox_inches="tight")
    return path
