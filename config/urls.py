from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

# The admin says which site it is ("Django administration" told an admin nothing).
admin.site.site_header = "the arena · administration"
admin.site.site_title = "the arena admin"
admin.site.index_title = "Models, prompts, polls and votes"
admin.site.site_url = "/"

urlpatterns = [
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("generation/", include("generation.urls")),
    path("training/", include("training.urls")),
    path("scores/", include("generation.scoring.urls")),
    path("", include("arena.urls")),
]
