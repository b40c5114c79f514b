from django.urls import path

from generation.scoring import views

app_name = "scoring"
urlpatterns = [
    path("characters/", views.character_list, name="characters"),
    path("characters/<int:character_id>/", views.character_detail, name="character"),
    path("aesthetic-kde.png", views.aesthetic_kde, name="aesthetic_kde"),
    path("status/", views.scorer_status_page, name="status"),
    path("status/score/", views.scorer_enqueue, name="enqueue"),
]
