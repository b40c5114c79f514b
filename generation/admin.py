"""Django admin for every generation model. A model variant and its LoRAs are saved through the registry
services that ``register_model`` uses: the checkpoint and the LoRA files are checked the same way, and
nothing is saved when a check fails."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from generation import services
from generation.forms import LoraAdminForm, ModelVariantAdminForm, VariantLoraAdminForm
from generation.models import (
    Character,
    CharacterReference,
    GenerationJob,
    GenerationTask,
    Image,
    Lora,
    ModelVariant,
    Prompt,
    PromptSet,
    VariantLora,
)


class VariantLoraInline(admin.TabularInline):
    model = VariantLora
    form = VariantLoraAdminForm
    extra = 0
    fields = ("path", "weight", "format", "position")
    readonly_fields = ("format",)  # read from the file's keys when it is saved


def _lora_rows(formset) -> list[tuple[str, float]]:
    """The (path, weight) LoRAs a variant's inline keeps, in the order of their positions."""
    kept = [form.cleaned_data for form in formset.forms
            if form.cleaned_data and form.cleaned_data.get("path") and not form.cleaned_data.get("DELETE")]
    kept.sort(key=lambda data: data.get("position") or 0)
    return [(data["path"], data["weight"]) for data in kept]


@admin.register(ModelVariant)
class ModelVariantAdmin(admin.ModelAdmin):
    form = ModelVariantAdminForm
    inlines = [VariantLoraInline]
    list_display = ("name", "family", "version", "kind", "prediction_type", "source_type", "enabled", "health",
                    "matchmaking_weight", "parent")
    list_filter = ("enabled", "kind", "prediction_type", "health", "family")
    list_editable = ("enabled", "matchmaking_weight")
    search_fields = ("name", "family", "version", "source_path")
    readonly_fields = ("has_ztsnr", "checkpoint_notes", "model_hash", "health_message", "created_at")
    autocomplete_fields = ("parent",)
    actions = ["mark_healthy", "refresh_hash"]
    fieldsets = (
        (None, {"fields": ("name", "family", "version", "kind", "parent", "description", "enabled", "matchmaking_weight")}),
        ("Checkpoint", {"fields": ("source_type", "source_path", "config_path", "prediction_type", "has_ztsnr",
                                   "model_hash", "checkpoint_notes", "health", "health_message")}),
        ("Default sampler settings", {"fields": ("sampler", "schedule_type", "steps", "cfg_scale", "width", "height",
                                                 "clip_skip", "guidance_rescale")}),
        ("Default hires. fix", {"fields": ("enable_hr", "hr_upscaler", "hr_second_pass_steps", "denoising_strength",
                                           "hr_scale")}),
        (None, {"fields": ("created_at",)}),
    )

    def save_model(self, request, obj, form, change):
        services.variant_save(variant=obj, changed=form.changed_data if change else None)

    def save_formset(self, request, form, formset, change):
        if formset.model is not VariantLora:
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)  # lists what was added, changed and deleted for the history; the service writes
        services.variant_loras_set(variant=form.instance, loras=_lora_rows(formset))

    @admin.action(description="Mark healthy (after fixing the checkpoint)")
    def mark_healthy(self, request, queryset):
        for variant in queryset:
            services.variant_mark_healthy(variant_id=variant.pk)
        self.message_user(request, f"{queryset.count()} models marked healthy.", messages.SUCCESS)

    @admin.action(description="Hash the checkpoint again (A1111's Model hash)")
    def refresh_hash(self, request, queryset):
        for variant in queryset:
            try:
                value = services.variant_hash_refresh(variant=variant)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.WARNING)
            else:
                self.message_user(request, f"{variant.name}: {value or 'no hash (a diffusers folder)'}", messages.SUCCESS)


@admin.register(Lora)
class LoraAdmin(admin.ModelAdmin):
    """LoRAs that prompts apply by name (``<lora:NAME:WEIGHT>``), saved through the service ``register_lora`` uses."""

    form = LoraAdminForm
    list_display = ("name", "format", "short_hash", "path", "created_at")
    search_fields = ("name", "path")
    readonly_fields = ("format", "short_hash", "created_at")
    fields = ("name", "path", "description", "format", "short_hash", "created_at")

    def save_model(self, request, obj, form, change):
        services.lora_save(lora=obj, changed=form.changed_data if change else None)


@admin.register(VariantLora)
class VariantLoraAdmin(admin.ModelAdmin):
    form = VariantLoraAdminForm
    list_display = ("variant", "path", "weight", "format", "position")
    list_select_related = ("variant",)
    autocomplete_fields = ("variant",)
    search_fields = ("path", "variant__name")
    readonly_fields = ("format",)

    def save_model(self, request, obj, form, change):
        services.variant_lora_save(lora=obj)


class CharacterReferenceInline(admin.TabularInline):
    model = CharacterReference
    extra = 1
    fields = ("image", "preview", "created_at")
    readonly_fields = ("preview", "created_at")

    @admin.display(description="preview")
    def preview(self, obj):
        if obj.pk and obj.image:
            return format_html('<img src="{}" style="max-height:96px">', obj.image.url)
        return "—"


@admin.register(Character)
class CharacterAdmin(admin.ModelAdmin):
    list_display = ("name", "tags", "reference_count")
    search_fields = ("name", "tags")
    inlines = [CharacterReferenceInline]

    @admin.display(description="references")
    def reference_count(self, obj):
        return obj.references.count()


@admin.register(CharacterReference)
class CharacterReferenceAdmin(admin.ModelAdmin):
    list_display = ("id", "character", "created_at")
    list_select_related = ("character",)
    autocomplete_fields = ("character",)


class PromptInline(admin.TabularInline):
    model = Prompt
    extra = 0
    fields = ("text", "negative_prompt", "character", "source")
    autocomplete_fields = ("character",)


@admin.register(PromptSet)
class PromptSetAdmin(admin.ModelAdmin):
    list_display = ("name", "prompt_count", "created_at")
    search_fields = ("name",)
    inlines = [PromptInline]

    @admin.display(description="prompts")
    def prompt_count(self, obj):
        return obj.prompts.count()


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ("id", "short_text", "prompt_set", "character", "source", "created_at")
    list_filter = ("source", "prompt_set")
    list_select_related = ("prompt_set", "character")
    search_fields = ("text",)
    autocomplete_fields = ("character", "prompt_set")

    @admin.display(description="text")
    def short_text(self, obj):
        return obj.text[:80]


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ("__str__", "status", "created_by", "created_at", "finished_at", "progress_link")
    list_filter = ("status",)
    readonly_fields = ("created_at", "started_at", "finished_at")
    actions = ["cancel", "retry_failed"]

    @admin.display(description="progress")
    def progress_link(self, obj):
        tasks = reverse("admin:generation_generationtask_changelist") + f"?job__id__exact={obj.pk}"
        return format_html('<a href="{}">progress</a> · <a href="{}">tasks</a>', reverse("generation:job", args=[obj.pk]), tasks)

    @admin.action(description="Cancel what has not started")
    def cancel(self, request, queryset):
        for job in queryset:
            try:
                services.job_cancel(job=job)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.WARNING)

    @admin.action(description="Retry failed images")
    def retry_failed(self, request, queryset):
        for job in queryset:
            try:
                services.job_retry_failed(job=job)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.WARNING)


@admin.register(GenerationTask)
class GenerationTaskAdmin(admin.ModelAdmin):
    list_display = ("id", "job", "variant", "seed", "status", "attempts", "worker", "error", "created_at")
    list_filter = ("status", "variant")
    list_select_related = ("job", "variant")
    search_fields = ("error", "prompt__text")
    raw_id_fields = ("job", "prompt", "image")


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ("id", "thumb_preview", "variant", "seed", "sampler", "schedule_type", "steps", "cfg_scale", "width",
                    "height", "enable_hr", "seconds", "created_at", "showcase_at")
    list_filter = ("variant", "sampler", "schedule_type", "enable_hr", ("showcase_at", admin.EmptyFieldListFilter))
    list_select_related = ("variant",)
    search_fields = ("prompt__text", "settings_key")
    raw_id_fields = ("prompt", "job")
    readonly_fields = ("thumb_preview", "settings_key", "created_at", "download", "showcase_at")
    actions = ["showcase"]

    @admin.action(description="Showcase: take these images' prompts out of the polls for good (for the model pages)")
    def showcase(self, request, queryset):
        """Every image of the selected images' prompt texts leaves the poll pool; the arena shows them with their
        models once no poll can show them any more. There is no way back: an image once shown with its model would
        give its polls away."""
        texts = set(queryset.values_list("prompt__text", flat=True))
        count = Image.objects.filter(prompt__text__in=texts, showcase_at__isnull=True).update(showcase_at=timezone.now())
        self.message_user(request, f"{count} image(s) of {len(texts)} prompt(s) taken out of the polls; they appear on "
                                   "their model pages once every poll that could show them has expired.")

    @admin.display(description="image")
    def thumb_preview(self, obj):
        if not obj.pk:
            return "—"
        return format_html('<img src="{}" style="max-height:96px" loading="lazy">', reverse("generation:image_thumb", args=[obj.pk]))

    @admin.display(description="original with parameters")
    def download(self, obj):
        if not obj.pk:
            return "—"
        return format_html('<a href="{}">download PNG</a>', reverse("generation:image_download", args=[obj.pk]))
