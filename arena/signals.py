from django.db.models.signals import post_save
from django.dispatch import receiver

from arena import pollgroups  # noqa: F401 (registers its signal receivers)
from generation.models import ModelVariant


@receiver(post_save, sender=ModelVariant, dispatch_uid="arena_ratings_for_new_variant")
def _ratings_for_new_variant(sender, instance: ModelVariant, created: bool, raw: bool = False, **kwargs) -> None:
    """A newly registered model starts with the initial rating in every scope."""
    if created and not raw:
        from arena.services import ratings_ensure

        ratings_ensure([instance.pk])
