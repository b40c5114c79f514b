"""A run's loss curve, drawn on the server with matplotlib's Agg canvas (no pyplot, no global state) as PNG."""

from __future__ import annotations

import io


def loss_png(steps: list[int], losses: list[float], *, title: str = "") -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if steps:
        ax.plot(steps, losses, color="#5fa8ff", linewidth=1.2, marker="." if len(steps) < 60 else None)
    else:
        ax.text(0.5, 0.5, "no steps reported yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
