"""Test data for the Django side of training: tiny parents registered through generation's registry, a dataset
built from real votes on images of them, and run settings sized for the tiny models."""

from __future__ import annotations

from arena.models import Mode
from generation import services as generation
from generation.models import ModelVariant
from tests.arena.factories import make_image, make_prompt, make_variant
from tests.arena.votelog import cast
from training import services

SMALL = dict(max_train_steps=3, train_batch_size=2, resolution=64, learning_rate=1e-3, network_dim=4,
             network_alpha=2.0, checkpointing_steps=2)


def register_parent(tiny_models, kind: str = "eps", name: str | None = None) -> ModelVariant:
    path = tiny_models.v_dir if kind == "v" else tiny_models.eps_dir
    return generation.variant_register(path=path, name=name or f"Tiny {kind}", prediction="v" if kind == "v" else "eps",
                                       defaults={"width": 256, "height": 256, "steps": 2, "sampler": "Euler"})


def voted_dataset(*, polls: int = 4, name: str = "votes", parent: ModelVariant | None = None):
    """``polls`` fixed duels between two models (and, with ``parent``, fixed-prompt images of the parent, so a
    registered child has prompts to meet it on), plus a tie; recorded under TRAINING_DIR."""
    a, b = make_variant(), make_variant()
    for i in range(polls):
        cast((a, b) if i % 2 else (b, a), "left", images=True)
    cast((a, b), "tie", images=True)
    if parent is not None:
        prompt = make_prompt("1girl, parent's fixed prompt")
        image = make_image(parent, prompt, seed=5)
        image.steps, image.width, image.height = 2, 256, 256
        image.settings_key = image.sampler_settings.key  # as generation stores it
        image.save()
    return services.dataset_build(filters=services.filters_clean(modes=[Mode.FIXED]), name=name)
