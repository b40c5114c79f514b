"""The aesthetic-score distribution per model as a KDE plot (like the Illustrious v2.0 post's)."""

from __future__ import annotations

import io

import numpy as np


def aesthetic_kde_png(values_by_model: dict[str, list[float]], *, title: str = "Aesthetic score per model (KDE)") -> bytes | None:
    """PNG bytes of one density curve per model (scipy gaussian_kde); ``None`` when there is nothing to draw.
    A model with a single score, or identical ones, is drawn as a vertical line."""
    series = {name: np.asarray(v, dtype=float) for name, v in values_by_model.items() if len(v)}
    if not series:
        return None
    from matplotlib.figure import Figure  # rendered with the Agg canvas; pyplot (and its global state) unused
    from scipy.stats import gaussian_kde

    kdes = {}
    for name, vals in series.items():
        if len(vals) >= 2 and np.ptp(vals) > 0:
            try:
                kdes[name] = gaussian_kde(vals)
            except np.linalg.LinAlgError:
                pass
    everything = np.concatenate(list(series.values()))
    lo, hi = float(everything.min()), float(everything.max())
    # room for the curves' tails: three bandwidths beyond the extreme scores
    widths = [3.0 * float(np.sqrt(k.covariance[0, 0])) for k in kdes.values()]
    pad = max(widths + [(hi - lo) * 0.05, 0.05])
    grid = np.linspace(lo - pad, hi + pad, 400)
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    for name, vals in series.items():
        label = f"{name} (n={len(vals)}, mean {vals.mean():.2f})"
        if name in kdes:
            density = kdes[name](grid)
            (line,) = ax.plot(grid, density, label=label)
            ax.fill_between(grid, density, alpha=0.15, color=line.get_color())
        else:
            ax.axvline(float(vals.mean()), label=label, linestyle="--")
    ax.set_xlabel("aesthetic score")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
