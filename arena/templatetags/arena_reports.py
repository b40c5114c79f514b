"""Template helpers of the leaderboard reports and the stats page."""

from django import template

register = template.Library()


@register.inclusion_tag("arena/_leaderboard_reports.html", takes_context=True)
def leaderboard_reports(context, scope):
    """The leaderboard's reports section (intervals, plots, downloads) rendered into the full page."""
    from arena import reports
    from arena.views_reports import reports_context

    try:
        scope = reports.scope_clean(scope)
    except reports.ReportError:
        scope = reports.Scope.OVERALL
    return reports_context(context["request"], scope)


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
