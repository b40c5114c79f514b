import os

import pytest

# Nothing may reach a model hub, in any test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _media_and_cache(settings, tmp_path):
    """Every test writes media under its own folder and starts with an empty cache."""
    from django.core.cache import cache

    from arena import matchmaking, pollgroups
    from arena.selectors import polls

    settings.MEDIA_ROOT = tmp_path / "media"
    cache.clear()
    pollgroups.invalidate()
    polls.forget_candidates()
    matchmaking.pending_forget()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny SDXL-shaped models (the real diffusers/transformers classes, pre-trained on procedural captioned
    pictures), from ``generation.tiny.make_tiny_models``; a ``generation.tiny.TinyModels`` of paths (see
    tests/generation/conftest.py). The build takes minutes once, so it is cached across sessions in
    ARENA_TINY_MODELS_DIR, by default VAR_DIR/cache/tiny-models (content-keyed: a code change rebuilds;
    `make tiny-models` builds it before the suite).

    Torch runs single-threaded unless OMP_NUM_THREADS says otherwise: tiny models gain nothing from threads,
    and on shared CPUs OpenMP's spin-waiting threads made the generation tests 2-3x slower."""
    import torch

    from generation.tiny import make_tiny_models

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS") or 1)))
    from django.conf import settings

    root = settings.TINY_MODELS_DIR  # ARENA_TINY_MODELS_DIR, by default VAR_DIR/cache/tiny-models
    return make_tiny_models(root)
