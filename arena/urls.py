from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("arena.urls_site")),
    path("generation/", include("generation.urls")),
    path("training/", include("training.urls")),
]
