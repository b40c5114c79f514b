from django.urls import include, path, re_path

from arena import views

app_name = "arena"
urlpatterns = [
    path("", views.fixed_duel, name="home"),
    path("duel/", views.fixed_duel, name="fixed"),
    path("free/", views.free_duel, name="free"),
    path("ffa/", views.free_for_all, name="ffa"),
    path("poll/<uuid:token>/", views.poll_detail, name="poll"),
    path("poll/<uuid:token>/vote/", views.poll_vote, name="vote"),
    path("poll/<uuid:token>/image/<int:position>", views.poll_image, name="poll_image"),
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    path("models/<int:pk>/", views.model_detail, name="model"),
    path("", include("arena.urls_reports")),  # leaderboard reports, exports, plots, /stats/
    path("api/", include("arena.urls_api")),
    re_path(r"^media/t/(?P<path>[0-9a-f]{2}/[0-9a-f]{32}\.webp)$", views.public_thumb, name="thumb"),
    re_path(r"^media/(?P<path>.+)$", views.staff_media, name="staff_media"),
]
