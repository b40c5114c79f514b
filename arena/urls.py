from django.urls import include, path, re_path, register_converter

from arena.views import boards, models, polls, stats

class PollToken:
    """A poll's token: the UUID of a free-prompt duel, or an issued poll's encrypted ticket (base64url)."""

    regex = r"[A-Za-z0-9_-]{1,400}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value) -> str:
        return str(value)


register_converter(PollToken, "polltoken")

app_name = "arena"
urlpatterns = [
    path("", polls.fixed_duel, name="home"),
    path("duel/", polls.fixed_duel, name="fixed"),
    path("free/", polls.free_duel, name="free"),
    path("ffa/", polls.free_for_all, name="ffa"),
    path("poll/<polltoken:token>/", polls.poll_detail, name="poll"),
    path("poll/<polltoken:token>/vote/", polls.poll_vote, name="vote"),
    path("poll/<polltoken:token>/reveal/", polls.poll_reveal, name="reveal"),
    path("poll/<polltoken:token>/ratings/", polls.poll_ratings, name="ratings"),
    path("poll/<polltoken:token>/image/<int:position>", polls.poll_image, name="poll_image"),
    path("leaderboard/", boards.leaderboard, name="leaderboard"),
    path("leaderboard/reports/", boards.leaderboard_reports, name="leaderboard_reports"),
    path("leaderboard/export.<str:fmt>", boards.leaderboard_export, name="leaderboard_export"),
    path("leaderboard/battles.json", boards.vote_battles, name="vote_battles"),
    path("leaderboard/votes.jsonl", boards.vote_jsonl, name="vote_jsonl"),
    path("leaderboard/plots/<slug:kind>.<str:fmt>", boards.leaderboard_plot, name="leaderboard_plot"),
    path("stats/", stats.stats, name="stats"),
    path("stats/exclusions/", stats.voter_exclusion, name="voter_exclusion"),
    path("models/<int:pk>/", models.model_detail, name="model"),
    path("images/<int:image_id>/thumb.webp", models.image_thumb, name="image_thumb"),
    path("api/", include("arena.urls_api")),
    re_path(r"^media/(?P<path>.+)$", models.staff_media, name="staff_media"),
]
