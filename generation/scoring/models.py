"""Automatic scores of generated images: CCIP character similarity, aesthetic score, prompt alignment, and the
score of a reward model trained on the votes.

Every score records the sha256 of the scorer files that made it (``scorer_hash``); a new scorer file gives a
new hash and the image is scored again. CCIP features are cached per image (or reference) and scorer hash.
"""

from __future__ import annotations

import numpy as np
from django.db import models
from django.db.models import Q


class ScoreKind(models.TextChoices):
    CCIP = "ccip", "CCIP difference to the character's references"
    AESTHETIC = "aesthetic", "aesthetic score"
    ALIGNMENT = "alignment", "prompt alignment (CLIP score)"
    REWARD = "reward", "reward model (trained on votes)"


class CcipFeature(models.Model):
    """One image's (or one character reference's) CCIP feature vector, extracted once per scorer version."""

    image = models.ForeignKey("generation.Image", null=True, blank=True, on_delete=models.CASCADE,
                              related_name="ccip_features")
    reference = models.ForeignKey("generation.CharacterReference", null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="ccip_features")
    scorer_hash = models.CharField(max_length=64)
    dim = models.PositiveIntegerField()
    vector = models.BinaryField(help_text="float32 little-endian")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(image__isnull=False) & Q(reference__isnull=True))
                | (Q(image__isnull=True) & Q(reference__isnull=False)),
                name="ccip_feature_image_xor_reference",
            ),
            models.UniqueConstraint(fields=["image", "scorer_hash"], condition=Q(image__isnull=False),
                                    name="ccip_feature_unique_image"),
            models.UniqueConstraint(fields=["reference", "scorer_hash"], condition=Q(reference__isnull=False),
                                    name="ccip_feature_unique_reference"),
        ]

    def __str__(self) -> str:
        owner = f"image {self.image_id}" if self.image_id else f"reference {self.reference_id}"
        return f"CCIP feature of {owner}"

    @staticmethod
    def pack(vector: np.ndarray) -> bytes:
        return np.asarray(vector, dtype="<f4").tobytes()

    def as_array(self) -> np.ndarray:
        return np.frombuffer(bytes(self.vector), dtype="<f4").reshape(self.dim)


class ImageScore(models.Model):
    """The current score of one image by one judge."""

    image = models.ForeignKey("generation.Image", on_delete=models.CASCADE, related_name="auto_scores")
    kind = models.CharField(max_length=10, choices=ScoreKind.choices)
    # ccip: mean difference to the character's references (lower is more alike); aesthetic: the predictor's
    # score; alignment: 100 × cosine(prompt, image), clipped at 0; reward: the reward model's score (higher is
    # preferred by the voters it learned from).
    value = models.FloatField()
    # ccip only: share of references at or below the threshold, and how many references were compared.
    same_ratio = models.FloatField(null=True, blank=True)
    references = models.PositiveIntegerField(default=0)
    # ccip: {"threshold": t, "differences": {"<reference id>": d, ...}}
    details = models.JSONField(default=dict, blank=True)
    scorer_hash = models.CharField(max_length=64)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "kind"], name="image_score_unique_kind"),
            models.CheckConstraint(condition=Q(kind__in=ScoreKind.values), name="image_score_kind_valid"),
            models.CheckConstraint(
                condition=Q(same_ratio__isnull=True) | (Q(same_ratio__gte=0) & Q(same_ratio__lte=1)),
                name="image_score_ratio_range",
            ),
            models.CheckConstraint(
                condition=~Q(kind="ccip") | (Q(same_ratio__isnull=False) & Q(references__gte=1)),
                name="image_score_ccip_has_ratio",
            ),
        ]
        indexes = [models.Index(fields=["kind", "image"])]

    def __str__(self) -> str:
        return f"{self.kind} of image {self.image_id}: {self.value:.4f}"
