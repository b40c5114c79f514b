"""Model registry, prompts and characters, generated images and generation jobs."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q

from generation.sampling import AUTOMATIC, SamplerSettings


def _opaque_name(folder: str, ext: str) -> str:
    # Random names carry nothing about the model, prompt or seed.
    token = secrets.token_hex(16)
    return f"{folder}/{token[:2]}/{token}.{ext}"


def image_original_path(instance: "Image", filename: str) -> str:
    return _opaque_name("img", "png")


def image_voter_path(instance: "Image", filename: str) -> str:
    return _opaque_name("v", "png")


def image_thumb_path(instance: "Image", filename: str) -> str:
    return _opaque_name("t", "webp")


def reference_path(instance: "CharacterReference", filename: str) -> str:
    return _opaque_name("ref", "png")


class LoraFormat(models.TextChoices):
    KOHYA = "kohya", "kohya (lora_unet_*, lora_te1_*)"
    DIFFUSERS = "diffusers", "diffusers / peft"


class HiresFields(models.Model):
    """A1111's schedule type and "Hires. fix" settings (names as in A1111's txt2img API), on an image, a task and
    a model's defaults. Their defaults are ``SamplerSettings``' own, which leave the settings key unchanged."""

    schedule_type = models.CharField(max_length=40, default=AUTOMATIC,
                                     help_text="A1111's schedule type; Automatic is the sampler's own default")
    enable_hr = models.BooleanField(default=False, verbose_name="hires fix",
                                    help_text="upscale the image, then improve its details with an image-to-image pass")
    hr_scale = models.FloatField(default=2.0, verbose_name="hires upscale by")
    hr_second_pass_steps = models.PositiveSmallIntegerField(default=0, verbose_name="hires steps",
                                                            help_text="0 = as many as the sampling steps")
    denoising_strength = models.FloatField(default=0.7, help_text="of the hires pass")
    hr_upscaler = models.CharField(max_length=40, default="Latent", verbose_name="hires upscaler")

    class Meta:
        abstract = True


class ModelVariant(HiresFields):
    class Kind(models.TextChoices):
        BASE = "base", "base"
        AESTHETIC = "aesthetic", "aesthetic"
        FINETUNE = "finetune", "fine-tune"

    class Prediction(models.TextChoices):
        EPSILON = "eps", "epsilon"
        V = "v", "v-prediction (zero terminal SNR)"

    class SourceType(models.TextChoices):
        SINGLE_FILE = "single_file", "single .safetensors checkpoint"
        DIFFUSERS = "diffusers", "diffusers folder"
        NONE = "none", "no local weights (imported images only)"

    class Health(models.TextChoices):
        OK = "ok", "ok"
        FAILING = "failing", "failing"

    name = models.CharField(max_length=120, unique=True)
    family = models.CharField(max_length=80, default="Illustrious XL", blank=True)
    version = models.CharField(max_length=40, blank=True)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.BASE)
    prediction_type = models.CharField(max_length=4, choices=Prediction.choices, default=Prediction.EPSILON)
    source_type = models.CharField(max_length=12, choices=SourceType.choices, default=SourceType.NONE)
    source_path = models.CharField(max_length=1000, blank=True)
    config_path = models.CharField(max_length=1000, blank=True, help_text="local diffusers config for single files")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    description = models.TextField(blank=True)
    # default sampler settings
    sampler = models.CharField(max_length=40, default="Euler a")
    steps = models.PositiveSmallIntegerField(default=28)
    cfg_scale = models.FloatField(default=6.0)
    width = models.PositiveSmallIntegerField(default=832)
    height = models.PositiveSmallIntegerField(default=1216)
    clip_skip = models.PositiveSmallIntegerField(default=1)
    guidance_rescale = models.FloatField(default=0.0)
    enabled = models.BooleanField(default=True)
    health = models.CharField(max_length=8, choices=Health.choices, default=Health.OK)
    health_message = models.CharField(max_length=500, blank=True)
    has_ztsnr = models.BooleanField(default=False, help_text="checkpoint carries the ztsnr marker key")
    checkpoint_notes = models.CharField(max_length=500, blank=True, help_text="what the checkpoint check found")
    model_hash = models.CharField(max_length=10, blank=True,
                                  help_text="A1111's short hash (sha256 of the file, 10 hex digits); a diffusers folder has none")
    matchmaking_weight = models.FloatField(default=1.0)
    # A fine-tune's card (training method, dataset hash, steps, metrics), shown on its model page.
    card = models.JSONField(default=dict, blank=True, help_text="how a fine-tune was made (set by its registration)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(matchmaking_weight__gte=0), name="variant_weight_nonnegative"),
            models.CheckConstraint(condition=Q(steps__gte=1) & Q(steps__lte=200), name="variant_steps_range"),
        ]

    def __str__(self) -> str:
        return self.name


class VariantLora(models.Model):
    """A LoRA file applied to a variant with a weight (kohya or diffusers key naming)."""

    Format = LoraFormat

    variant = models.ForeignKey(ModelVariant, on_delete=models.CASCADE, related_name="loras")
    path = models.CharField(max_length=1000)
    weight = models.FloatField(default=1.0)
    format = models.CharField(max_length=10, choices=Format.choices, default=Format.KOHYA)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["variant", "path"], name="variant_lora_unique_path"),
            models.CheckConstraint(condition=Q(weight__gte=-4) & Q(weight__lte=4), name="variant_lora_weight_range"),
        ]

    def __str__(self) -> str:
        return f"{self.path}:{self.weight:g}"


class Lora(models.Model):
    """A LoRA file registered by name: ``<lora:NAME:WEIGHT>`` (or ``<lora:NAME:TE:UNET>``) in a fixed prompt applies
    it to whichever model renders the prompt, as A1111 does. Registered by ``register_lora`` and admin through
    ``services.lora_save``, which checks the file and stores A1111's short hash (the PNG record's ``Lora hashes``)."""

    name = models.CharField(max_length=200, unique=True, help_text="the name prompts use: <lora:NAME:1>")
    path = models.CharField(max_length=1000)
    format = models.CharField(max_length=10, choices=LoraFormat.choices, default=LoraFormat.KOHYA)
    short_hash = models.CharField(max_length=12, blank=True, help_text="A1111's short hash (12 hex digits)")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Character(models.Model):
    name = models.CharField(max_length=200, unique=True)
    tags = models.CharField(max_length=500, blank=True, help_text="the Danbooru tag(s) that name this character")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CharacterReference(models.Model):
    character = models.ForeignKey(Character, on_delete=models.CASCADE, related_name="references")
    image = models.ImageField(upload_to=reference_path)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"reference of {self.character}"


class PromptSet(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Prompt(models.Model):
    class Source(models.TextChoices):
        FIXED = "fixed", "fixed prompt set"
        FREE = "free", "typed by a voter"
        IMPORTED = "imported", "imported with images"

    prompt_set = models.ForeignKey(PromptSet, null=True, blank=True, on_delete=models.CASCADE, related_name="prompts")
    text = models.TextField()
    negative_prompt = models.TextField(blank=True)
    character = models.ForeignKey(Character, null=True, blank=True, on_delete=models.SET_NULL, related_name="prompts")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.FIXED)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["source", "-created_at"])]

    def __str__(self) -> str:
        return self.text[:80]


class GenerationJob(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    prompt_set = models.ForeignKey(PromptSet, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    # What the admin asked for (seeds, overrides), kept for the history page.
    settings = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name or f"job {self.pk}"


class SamplerFields(HiresFields):
    """The columns of one ``SamplerSettings``: what an image was made with, or a task will make it with.
    A setting added to ``SamplerSettings`` gets its column here (images and tasks both). ``width`` and
    ``height`` are the first pass's size (A1111's "Size"); with the hires pass on, the image is ``output_size``."""

    negative_prompt = models.TextField(blank=True)
    seed = models.BigIntegerField()
    sampler = models.CharField(max_length=40)
    steps = models.PositiveSmallIntegerField()
    cfg_scale = models.FloatField()
    width = models.PositiveSmallIntegerField()
    height = models.PositiveSmallIntegerField()
    clip_skip = models.PositiveSmallIntegerField(default=1)

    class Meta:
        abstract = True

    @property
    def sampler_settings(self) -> SamplerSettings:
        return SamplerSettings.of(self)

    @property
    def output_size(self) -> tuple[int, int]:
        return self.sampler_settings.output_size()


class Image(SamplerFields):
    """One generated (or imported) image with its full generation record."""

    variant = models.ForeignKey(ModelVariant, on_delete=models.PROTECT, related_name="images")
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="images")
    # Images of one prompt that may meet in a fixed-prompt duel share this key (seed and all settings).
    settings_key = models.CharField(max_length=64, db_index=True)
    file = models.ImageField(upload_to=image_original_path, help_text="original PNG with A1111 parameters")
    voter_file = models.ImageField(upload_to=image_voter_path, help_text="re-encoded copy without metadata")
    thumb = models.ImageField(upload_to=image_thumb_path, blank=True)
    seconds = models.FloatField(default=0.0)
    worker = models.CharField(max_length=200, blank=True)
    job = models.ForeignKey(GenerationJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="images")
    created_at = models.DateTimeField(auto_now_add=True)
    # An admin's showcase pick: from this moment the image is out of the poll pool, and once every poll that could
    # have drawn it has expired it may be shown with its model (arena.permissions decides what is shown).
    showcase_at = models.DateTimeField(
        null=True, blank=True, help_text="taken out of polls for the model pages at this time (never put back)"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["variant", "prompt", "settings_key"], name="image_unique_per_variant_prompt_settings"),
        ]
        indexes = [models.Index(fields=["prompt", "settings_key"])]

    def __str__(self) -> str:
        return f"image {self.pk}"


class GenerationTask(SamplerFields):
    """One image to make: a model, a prompt, a seed and settings. Jobs expand to these; free-prompt duels
    create them live. The worker claims a task with a conditional update and links the image it stored."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    job = models.ForeignKey(GenerationJob, null=True, blank=True, on_delete=models.CASCADE, related_name="tasks")
    variant = models.ForeignKey(ModelVariant, on_delete=models.CASCADE, related_name="generation_tasks")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="generation_tasks")
    settings_key = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    image = models.OneToOneField(Image, null=True, blank=True, on_delete=models.SET_NULL, related_name="task")
    error = models.CharField(max_length=1000, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The Celery task id of the message that claimed this task: a redelivery of that same message (worker
    # killed mid-task) may take it back; any other message may not.
    claim_token = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "variant"]), models.Index(fields=["job", "status"])]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "variant", "prompt", "settings_key"],
                condition=Q(job__isnull=False),
                name="task_unique_per_job_variant_prompt_settings",
            ),
        ]

    def __str__(self) -> str:
        return f"task {self.pk} ({self.status})"
