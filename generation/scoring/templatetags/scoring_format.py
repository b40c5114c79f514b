"""Formatting of scores for templates: None shows as "not computed"."""

from django import template

register = template.Library()

NOT_COMPUTED = "not computed"


@register.filter
def score(value, digits=2):
    return NOT_COMPUTED if value is None else f"{value:.{int(digits)}f}"


@register.filter
def interval(value, digits=2):
    return "—" if not value else f"{value[0]:.{int(digits)}f} – {value[1]:.{int(digits)}f}"


@register.filter
def percent(value):
    return NOT_COMPUTED if value is None else f"{100 * value:.1f}%"


@register.filter
def percent_interval(value):
    return "—" if not value else f"{100 * value[0]:.1f}% – {100 * value[1]:.1f}%"
