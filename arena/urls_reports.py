"""Report URLs, included by arena/urls_site.py (names live in the "arena" namespace)."""

from django.urls import path

from arena import views_reports

urlpatterns = [
    path("leaderboard/reports/", views_reports.leaderboard_reports, name="leaderboard_reports"),
    path("leaderboard/export.<str:fmt>", views_reports.leaderboard_export, name="leaderboard_export"),
    path("leaderboard/battles.json", views_reports.vote_battles, name="vote_battles"),
    path("leaderboard/votes.jsonl", views_reports.vote_jsonl, name="vote_jsonl"),
    path("leaderboard/plots/<slug:kind>.<str:fmt>", views_reports.leaderboard_plot, name="leaderboard_plot"),
    path("stats/", views_reports.stats, name="stats"),
]
