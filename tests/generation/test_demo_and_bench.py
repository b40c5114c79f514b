"""seed_generation_demo (idempotent, four models whose images meet in polls; on random weights when no pre-trained
build is there, then upgraded to the pre-trained one), and bench_generation's JSON line."""

import datetime as dt
import io
import json
import os
from pathlib import Path

import pytest
from django.core.management import call_command

from generation import selectors, services
from generation.models import Character, GenerationJob, Image, ModelVariant
from generation.services import demo as demo_service

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
    demo = demo_service
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


@pytest.fixture(scope="module")
def random_models(tmp_path_factory):
    """The seeded random-weight tiny models (seconds to build), the first run's demo models."""
    from generation.tiny import make_tiny_models

    return make_tiny_models(tmp_path_factory.mktemp("tiny-random"), pretrained=False)


@pytest.fixture
def sent(monkeypatch):
    """The demo upgrade messages sent to the queue (none really is), and no real pre-training: a build of the
    pre-trained models fails the test (the tests' pre-trained build is made once by the ``tiny_models`` fixture)."""
    from generation import tasks
    from generation.tiny import build

    calls = []
    monkeypatch.setattr(tasks.demo_upgrade, "apply_async", lambda *a, **kw: calls.append(kw))

    def no_build(root, key, *, pretrained, say):
        raise AssertionError(f"a tiny-model build (pretrained={pretrained}) started in {root}")

    monkeypatch.setattr(build, "_build", no_build)
    return calls


@pytest.fixture
def random_demo(random_models, tmp_path, settings, monkeypatch, sent):
    """No pre-trained build in TINY_MODELS_DIR, the random-weight one in TINY_RANDOM_MODELS_DIR; one step per image."""
    from generation import services as generation_services

    settings.TINY_MODELS_DIR = tmp_path / "no-tiny-models"
    settings.TINY_RANDOM_MODELS_DIR = Path(random_models.root)
    monkeypatch.setattr(demo_service, "RANDOM_STEPS", 1)
    monkeypatch.setattr(demo_service, "SEEDS", [1])
    monkeypatch.setattr(demo_service, "STEPS", 1)
    monkeypatch.setattr(generation_services.jobs, "_job_finished_hook", lambda job_id: None)  # no scorers here
    settings.GENERATION_BATCH_SIZE = 4
    return random_models


def _seed(capture, *args) -> str:
    out = io.StringIO()
    with capture(execute=True):
        call_command("seed_generation_demo", *args, stdout=out)
    return out.getvalue()


def test_without_a_pretrained_build_the_demo_seeds_on_random_weights_and_sends_the_upgrade_only_to_a_broker(
        random_demo, settings, sent, django_capture_on_commit_callbacks):
    out = _seed(django_capture_on_commit_callbacks)  # the tests' embedded configuration: eager tasks
    variants = ModelVariant.objects.filter(enabled=True)
    assert sorted(variants.values_list("name", flat=True)) == sorted(demo_service.demo_variant_names(pretrained=False))
    assert all(Path(v.source_path).resolve().is_relative_to(Path(random_demo.root).resolve()) for v in variants)
    job = GenerationJob.objects.get()
    assert job.name.endswith(demo_service.RANDOM_SUFFIX) and job.status == "done"
    assert Image.objects.filter(job=job).count() == 4 * 3  # one prompt per character and one seed on random weights
    assert selectors.prompt_image_groups(min_variants=4).count() == 3  # still material for 4-way polls
    assert demo_service.UPGRADE_NOTE in out and "random weights" in out
    assert sent == [] and not Path(settings.TINY_MODELS_DIR).exists()  # eager: nothing sent, nothing built

    settings.CELERY_TASK_ALWAYS_EAGER = False  # a broker and workers: the upgrade goes to the train queue
    _seed(django_capture_on_commit_callbacks, "--no-pretrain-upgrade")
    assert sent == []
    out = _seed(django_capture_on_commit_callbacks)
    assert sent == [{}] and "sent the build" in out
    from config.celery import app
    assert app.amqp.router.route({}, "generation.demo_upgrade")["queue"].name == "train"  # not the gpu worker's
    assert GenerationJob.objects.count() == 1 and ModelVariant.objects.count() == 4 and Image.objects.count() == 12


def test_with_a_pretrained_build_the_demo_uses_it_and_sends_nothing(models_dir, tiny_models, settings, monkeypatch,
                                                                    sent, django_capture_on_commit_callbacks):
    monkeypatch.setattr(demo_service, "SEEDS", [1])
    monkeypatch.setattr(demo_service, "STEPS", 1)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    out = _seed(django_capture_on_commit_callbacks)
    names = sorted(ModelVariant.objects.filter(enabled=True).values_list("name", flat=True))
    assert names == sorted(demo_service.demo_variant_names(pretrained=True))
    assert all(Path(p).resolve().is_relative_to(Path(tiny_models.root).resolve())
               for p in ModelVariant.objects.values_list("source_path", flat=True))
    assert sent == [] and demo_service.UPGRADE_NOTE not in out and not services.demo_upgrade_needed()
    assert GenerationJob.objects.get().name == demo_service.JOB_NAME


def test_the_upgrade_moves_the_demo_to_the_pretrained_models_keeps_the_votes_and_is_idempotent(
        random_demo, tiny_models, settings, sent, django_capture_on_commit_callbacks):
    from arena import services as arena_services
    from arena.models import Mode, Poll, Vote

    _seed(django_capture_on_commit_callbacks)
    random_ids = set(ModelVariant.objects.values_list("id", flat=True))
    poll = arena_services.poll_create(mode=Mode.FFA, voter_key="a1" * 16)
    arena_services.vote_cast(poll_token=poll.token, voter_key="a1" * 16, ip_hash="ip", choice="best", best=0,
                             now=poll.ticket.issued_at + dt.timedelta(seconds=10))
    assert services.demo_upgrade_needed() and Vote.objects.count() == 1

    settings.TINY_MODELS_DIR = Path(tiny_models.root)  # the pre-trained build is there now (no build runs: `sent`)
    with django_capture_on_commit_callbacks(execute=True):
        # the new job's images are made when this block commits, so the random-weight models stay for now
        assert services.demo_upgrade() == "waiting"
    new = ModelVariant.objects.exclude(id__in=random_ids)
    assert sorted(new.values_list("name", flat=True)) == sorted(demo_service.demo_variant_names(pretrained=True))
    assert all(Path(p).resolve().is_relative_to(Path(tiny_models.root).resolve())
               for p in new.values_list("source_path", flat=True))
    assert ModelVariant.objects.filter(id__in=random_ids, enabled=True).count() == 4
    job = GenerationJob.objects.get(name=demo_service.JOB_NAME)
    assert job.status == "done" and set(job.tasks.values_list("variant_id", flat=True)) == set(new.values_list("id", flat=True))
    # one set of settings for the four models, so their images meet in polls
    assert len(set(Image.objects.filter(job=job).values_list("settings_key", flat=True))) == 1

    with django_capture_on_commit_callbacks(execute=True):
        assert services.demo_upgrade() == "done"  # the job is done: the random-weight models are disabled
    assert not ModelVariant.objects.filter(id__in=random_ids, enabled=True).exists()
    assert set(ModelVariant.objects.filter(enabled=True).values_list("id", flat=True)) == set(new.values_list("id", flat=True))
    assert Poll.objects.count() == 1 and Vote.objects.count() == 1  # the old poll and vote stay in the log
    assert Image.objects.filter(variant_id__in=random_ids).count() == 12
    fresh = arena_services.poll_create(mode=Mode.FFA, voter_key="b2" * 16)
    drawn = set(Image.objects.filter(id__in=fresh.ticket.image_ids).values_list("variant_id", flat=True))
    assert drawn == set(new.values_list("id", flat=True))  # new polls use the pre-trained models

    counts = (ModelVariant.objects.count(), GenerationJob.objects.count(), Image.objects.count())
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert services.demo_upgrade() == "nothing"
    assert callbacks == [] and (ModelVariant.objects.count(), GenerationJob.objects.count(), Image.objects.count()) == counts
    assert not services.demo_upgrade_enqueue() and sent == []


def test_bench_generation_prints_one_json_line_and_leaves_nothing(models_dir):
    out = io.StringIO()
    call_command("bench_generation", "--models", "2", "--prompts", "2", "--seeds", "1", "--steps", "2", stdout=out)
    line = out.getvalue().strip().splitlines()[-1]
    result = json.loads(line)
    assert set(result) == {"images", "job_s", "bare_s", "overhead_ratio", "pipeline_loads", "peak_rss_mb"}
    assert result["images"] == 4 and result["pipeline_loads"] == 2 and result["job_s"] > 0 and result["bare_s"] > 0
    assert not ModelVariant.objects.exists() and not Image.objects.exists()
