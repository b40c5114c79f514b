"""seed_generation_demo (idempotent, four models whose images meet in polls) and bench_generation's JSON line."""

import io
import json
import os

import pytest
from django.core.management import call_command

from generation import selectors
from generation.models import Character, GenerationJob, Image, ModelVariant

pytestmark = pytest.mark.django_db


@pytest.fixture
def models_dir(tiny_models, tmp_path, settings, monkeypatch):
    """MODELS_DIR with the session's tiny models in it (so nothing is rebuilt)."""
    root = tmp_path / "models"
    root.mkdir()
    os.symlink(tiny_models.root, root / "tiny")
    settings.MODELS_DIR = root
    from generation import services

    monkeypatch.setattr(services.jobs, "_job_finished_hook", lambda job_id: None)  # no scorers here
    return root


def test_seed_generation_demo_makes_four_models_images_and_is_idempotent(models_dir, settings, monkeypatch,
                                                                         django_capture_on_commit_callbacks):
    from generation.management.commands import seed_generation_demo as demo

    monkeypatch.setattr(demo, "SEEDS", [1])  # the demo makes two seeds at 4 steps; one at 1 step is enough here
    monkeypatch.setattr(demo, "STEPS", 1)
    settings.GENERATION_BATCH_SIZE = 4
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_generation_demo", stdout=io.StringIO())
    variants = ModelVariant.objects.filter(enabled=True)
    assert variants.count() == 4
    assert set(variants.values_list("kind", flat=True)) == {"base", "finetune", "aesthetic"}
    assert ModelVariant.objects.get(kind="aesthetic").parent is not None
    job = GenerationJob.objects.get()
    assert job.status == "done" and Image.objects.count() == 4 * 6
    assert {(i.width, i.height) for i in Image.objects.all()} == {(256, 256)}
    assert selectors.prompt_image_groups(min_variants=4).count() == 6  # material for 4-way polls
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_generation_demo", stdout=io.StringIO())
    assert GenerationJob.objects.count() == 1 and Image.objects.count() == 24 and ModelVariant.objects.count() == 4
    # references are made from generated images (here the images came after the first run's command returned,
    # as the test runs on-commit work at the end of the block; with autocommit they come within the run)
    assert all(c.references.exists() for c in Character.objects.all()) and Character.objects.count() == 3


def test_bench_generation_prints_one_json_line_and_leaves_nothing(models_dir):
    out = io.StringIO()
    call_command("bench_generation", "--models", "2", "--prompts", "2", "--seeds", "1", "--steps", "2", stdout=out)
    line = out.getvalue().strip().splitlines()[-1]
    result = json.loads(line)
    assert set(result) == {"images", "job_s", "bare_s", "overhead_ratio", "pipeline_loads", "peak_rss_mb"}
    assert result["images"] == 4 and result["pipeline_loads"] == 2 and result["job_s"] > 0 and result["bare_s"] > 0
    assert not ModelVariant.objects.exists() and not Image.objects.exists()
