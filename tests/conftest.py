import pytest


@pytest.fixture(autouse=True)
def _media_and_cache(settings, tmp_path):
    """Every test writes media under its own folder and starts with an empty cache."""
    from django.core.cache import cache

    from arena import pollgroups

    settings.MEDIA_ROOT = tmp_path / "media"
    cache.clear()
    pollgroups.invalidate()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny SDXL-shaped models (random weights, the real classes), built once per session.
    Set ARENA_TINY_MODELS_DIR to reuse one build across sessions."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from generation.tiny import make_tiny_models

    root = os.environ.get("ARENA_TINY_MODELS_DIR") or tmp_path_factory.mktemp("tiny-models")
    return make_tiny_models(root)
