from django.contrib import admin

from generation.scoring import selectors
from generation.scoring.models import CcipFeature, ImageScore


@admin.register(ImageScore)
class ImageScoreAdmin(admin.ModelAdmin):
    """Read-only: scores are written by ``score_images`` and the gpu workers. The list page shows which
    scorers are installed, missing or broken."""

    change_list_template = "scoring/admin/imagescore_change_list.html"
    list_display = ("image", "kind", "value", "same_ratio", "references", "short_hash", "computed_at")
    list_filter = ("kind",)
    search_fields = ("image__id",)
    readonly_fields = ("image", "kind", "value", "same_ratio", "references", "details", "scorer_hash", "computed_at")
    list_select_related = ("image",)

    @admin.display(description="scorer")
    def short_hash(self, obj):
        return obj.scorer_hash[:12]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "scorers": selectors.scorer_status()}
        return super().changelist_view(request, extra_context=extra_context)


@admin.register(CcipFeature)
class CcipFeatureAdmin(admin.ModelAdmin):
    list_display = ("id", "image", "reference", "dim", "scorer_hash", "created_at")
    readonly_fields = ("image", "reference", "dim", "scorer_hash", "created_at")
    exclude = ("vector",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
