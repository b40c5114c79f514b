from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "generation.scoring"
    label = "scoring"
    verbose_name = "Automatic scores"
