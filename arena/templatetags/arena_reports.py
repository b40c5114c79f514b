"""Template helpers of the leaderboard reports and the stats page."""

from django import template

register = template.Library()


@register.filter
def pct(value, digits=1):
    """0.1234 -> '12.3%'; None -> '–'."""
    if value is None:
        return "–"
    return f"{100.0 * value:.{int(digits)}f}%"


@register.filter
def interval_pct(interval, digits=1):
    """(lo, hi) -> '10.2–15.3%'; None -> '–'."""
    if not interval:
        return "–"
    lo, hi = interval
    return f"{100.0 * lo:.{int(digits)}f}–{100.0 * hi:.{int(digits)}f}%"


@register.filter
def num(value, digits=1):
    if value is None:
        return "–"
    return f"{value:.{int(digits)}f}"


@register.filter
def half_width(row):
    """Half the width of a leaderboard row's bootstrap interval."""
    lo, hi = row.get("bt_lo"), row.get("bt_hi")
    if lo is None or hi is None:
        return None
    return (hi - lo) / 2.0


@register.filter
def pvalue(value):
    if value is None:
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"
