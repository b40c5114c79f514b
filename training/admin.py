"""Django admin for datasets and runs: read and search (runs are scheduled, cancelled and resumed on /training/, whose
services validate first)."""

from django.contrib import admin

from training.models import PreferenceDataset, TrainingRun


@admin.register(PreferenceDataset)
class PreferenceDatasetAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "rows", "vote_log_seq", "created_at")
    readonly_fields = [f.name for f in PreferenceDataset._meta.fields]
    search_fields = ("name", "sha256", "vote_log_hash")


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "method", "parent", "dataset", "status", "step", "max_steps", "created_at")
    list_filter = ("method", "status")
    readonly_fields = [f.name for f in TrainingRun._meta.fields]

    def has_add_permission(self, request):
        return False
