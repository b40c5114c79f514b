import pytest

from tests.arena.factories import arena_with_images


@pytest.fixture
def arena(db):
    variants, prompts = arena_with_images()
    return variants, prompts


@pytest.fixture
def no_rate_limits(settings):
    settings.RATELIMIT_ENABLE = False
