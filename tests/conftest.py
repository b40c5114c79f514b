import pytest


@pytest.fixture(autouse=True)
def _media_and_cache(settings, tmp_path):
    """Every test writes media under its own folder and starts with an empty cache."""
    from django.core.cache import cache

    settings.MEDIA_ROOT = tmp_path / "media"
    cache.clear()
    yield
    cache.clear()
