"""Preference datasets built from the vote log, training runs, and what a run produced."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from generation.models import ModelVariant


class PreferenceDataset(models.Model):
    """A Parquet file of judged image pairs (training.trainers.dataset's schema: Pick-a-Pic's columns plus the
    settings), built from the counted votes with ``filters``, stamped with the vote-log head it was read at."""

    name = models.CharField(max_length=200, blank=True)
    path = models.CharField(max_length=1000, help_text="the .parquet file (under TRAINING_DIR)")
    sha256 = models.CharField(max_length=64)
    rows = models.PositiveIntegerField(default=0)
    vote_log_hash = models.CharField(max_length=64, blank=True, help_text="the vote-log chain's head when built")
    vote_log_seq = models.BigIntegerField(default=0, help_text="the log's last place when built")
    filters = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True, help_text="rows per source mode and kind")
    polls = models.JSONField(default=dict, blank=True, help_text="votes read per source mode, and votes skipped")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(rows__gte=0), name="dataset_rows_nonnegative")]

    def __str__(self) -> str:
        return self.name or f"dataset {self.pk}"

    def kind_count(self, kind: str) -> int:
        return sum(by_kind.get(kind, 0) for by_kind in (self.counts or {}).values())


class TrainingRun(models.Model):
    class Method(models.TextChoices):
        DPO = "dpo", "Diffusion-DPO LoRA"
        SFT = "sft", "supervised LoRA (aesthetic tuning)"
        REWARD = "reward", "reward model (Bradley–Terry head)"

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    method = models.CharField(max_length=8, choices=Method.choices)
    parent = models.ForeignKey(ModelVariant, null=True, blank=True, on_delete=models.PROTECT, related_name="training_runs",
                               help_text="the model a LoRA is trained on (a base or aesthetic variant)")
    dataset = models.ForeignKey(PreferenceDataset, on_delete=models.PROTECT, related_name="runs")
    config = models.JSONField(default=dict, help_text="the trainer's settings (TrainConfig / RewardConfig fields)")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    step = models.PositiveIntegerField(default=0)
    max_steps = models.PositiveIntegerField(default=0)
    eta_seconds = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(default=list, blank=True, help_text="one entry per reported step: step, loss, ...")
    last_event = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="the final metrics")
    output_files = models.JSONField(default=dict, blank=True)
    samples = models.JSONField(default=list, blank=True, help_text="sample images at checkpoints: {step, index, path, prompt}, if any")
    error = models.CharField(max_length=1000, blank=True)
    result_variant = models.ForeignKey(ModelVariant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    registration_job_id = models.BigIntegerField(null=True, blank=True, help_text="the generation job rendering the result")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    # claims, as generation tasks have them: the Celery task id of the slice that holds the run
    claim_token = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="deliveries of the current slice")
    slices = models.PositiveIntegerField(default=0, help_text="time slices started")
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status"])]
        constraints = [
            models.CheckConstraint(condition=Q(method__in=["dpo", "sft", "reward"]), name="run_method_known"),
            models.CheckConstraint(condition=Q(method="reward") | Q(parent__isnull=False), name="run_lora_has_parent"),
        ]

    def __str__(self) -> str:
        return f"{self.get_method_display()} run {self.pk}"

    @property
    def active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def percent(self) -> int:
        return int(100 * self.step / self.max_steps) if self.max_steps else 0
