from django.urls import include, path, re_path

from arena.views import boards, models, polls, stats

app_name = "arena"
urlpatterns = [
    path("", polls.fixed_duel, name="home"),
    path("duel/", polls.fixed_duel, name="fixed"),
    path("free/", polls.free_duel, name="free"),
    path("ffa/", polls.free_for_all, name="ffa"),
    path("poll/<uuid:token>/", polls.poll_detail, name="poll"),
    path("poll/<uuid:token>/vote/", polls.poll_vote, name="vote"),
    path("poll/<uuid:token>/image/<int:position>", polls.poll_image, name="poll_image"),
    path("leaderboard/", boards.leaderboard, name="leaderboard"),
    path("leaderboard/reports/", boards.leaderboard_reports, name="leaderboard_reports"),
    path("leaderboard/export.<str:fmt>", boards.leaderboard_export, name="leaderboard_export"),
    path("leaderboard/battles.json", boards.vote_battles, name="vote_battles"),
    path("leaderboard/votes.jsonl", boards.vote_jsonl, name="vote_jsonl"),
    path("leaderboard/plots/<slug:kind>.<str:fmt>", boards.leaderboard_plot, name="leaderboard_plot"),
    path("stats/", stats.stats, name="stats"),
    path("models/<int:pk>/", models.model_detail, name="model"),
    path("images/<int:image_id>/thumb.webp", models.image_thumb, name="image_thumb"),
    path("api/", include("arena.urls_api")),
    re_path(r"^media/(?P<path>.+)$", models.staff_media, name="staff_media"),
]
