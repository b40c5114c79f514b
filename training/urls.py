from django.urls import path

from training import views

app_name = "training"
urlpatterns = [
    path("", views.index, name="index"),
    path("datasets/", views.datasets, name="datasets"),
    path("runs/new/", views.run_new, name="run_new"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/loss.png", views.run_loss_plot, name="run_loss"),
    path("runs/<int:run_id>/samples/<int:n>.png", views.run_sample, name="run_sample"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="run_cancel"),
    path("runs/<int:run_id>/resume/", views.run_resume, name="run_resume"),
    path("loras/", views.lora_enroll, name="lora_enroll"),
]
