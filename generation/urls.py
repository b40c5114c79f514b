from django.urls import path

from generation import views

app_name = "generation"
urlpatterns = [
    path("", views.jobs, name="jobs"),
    path("jobs/<int:job_id>/", views.job_detail, name="job"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job_cancel"),
    path("jobs/<int:job_id>/retry/", views.job_retry, name="job_retry"),
    path("prompt-sets/", views.prompt_sets, name="prompt_sets"),
    path("characters/", views.characters, name="characters"),
    path("images/", views.images, name="images"),
    path("images/<int:image_id>/download/", views.image_download, name="image_download"),
    path("images/<int:image_id>/thumb/", views.image_thumb, name="image_thumb"),
]
