from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("generation/", include("generation.urls")),
    path("training/", include("training.urls")),
    path("scores/", include("generation.scoring.urls")),
    path("", include("arena.urls")),
]
