"""The read-only API, mounted at /api/ by arena/urls_site.py."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from arena import api

app_name = "api"

router = DefaultRouter()
router.register("models", api.ModelViewSet, basename="model")
router.register("polls", api.PollViewSet, basename="poll")
router.register("votes", api.VoteViewSet, basename="vote")

urlpatterns = [
    path("leaderboard/", api.LeaderboardView.as_view(), name="leaderboard"),
    path("leaderboard/<str:scope>/", api.LeaderboardScopeView.as_view(), name="leaderboard-scope"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", api.api_docs, name="docs"),
    *router.urls,
]
