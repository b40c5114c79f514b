"""The generation path on the real tiny SDXL models (diffusers, random weights): registering checkpoints,
a job matrix through the eager task path loading each model once, a redelivery that makes nothing new, a
free duel's live tasks giving same-size images, and the admin form's checkpoint check."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from generation import selectors, services
from generation.models import GenerationJob, Image, ModelVariant, Prompt, VariantLora
from generation.tasks import run_tasks
from tests.generation.helpers import make_prompt_set

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
# the admin form's schedule type and hires fields, at their defaults (the hires pass off)
ADMIN_HIRES_DEFAULTS = {"schedule_type": "Automatic", "hr_upscaler": "Latent", "hr_second_pass_steps": 0,
                        "denoising_strength": 0.7, "hr_scale": 2}


@pytest.fixture
def fresh_cache():
    """A fresh process-wide pipeline cache for the test (its ``loads`` starts at 0)."""
    from generation.pipelines import PipelineCache, set_pipeline_cache

    cache = PipelineCache(max_entries=2)
    previous = set_pipeline_cache(cache)
    yield cache
    set_pipeline_cache(previous)


@pytest.fixture(autouse=True)
def _no_scoring(monkeypatch):
    monkeypatch.setattr(services.jobs, "_job_finished_hook", lambda job_id: None)


def _register(path, name, **options):
    call_command("register_model", str(path), "--name", name, stdout=open("/dev/null", "w"), **options)
    return ModelVariant.objects.get(name=name)


def test_register_model_accepts_files_folders_and_loras(tiny_models):
    eps = _register(tiny_models.eps_file, "Tiny eps file", kind="base", width=256, height=256)
    assert (eps.source_type, eps.prediction_type, eps.has_ztsnr, eps.cfg_scale) == ("single_file", "eps", False, 6.0)
    folder = _register(tiny_models.eps_dir, "Tiny eps folder", kind="aesthetic", parent="Tiny eps file")
    assert folder.source_type == "diffusers" and folder.parent == eps
    v = _register(tiny_models.v_file, "Tiny v", kind="base")
    assert (v.prediction_type, v.has_ztsnr, v.cfg_scale) == ("v", True, 4.5)
    lora = _register(tiny_models.eps_file, "Tiny + LoRA", kind="finetune",
                     lora=[f"{tiny_models.lora_kohya}:0.8", tiny_models.lora_diffusers])
    assert list(lora.loras.values_list("format", "weight")) == [("kohya", 0.8), ("diffusers", 1.0)]


@pytest.mark.parametrize("case", ["missing", "not_a_checkpoint", "eps_for_v", "bad_lora", "unknown_parent"])
def test_register_model_refuses_bad_input_and_saves_nothing(tiny_models, tmp_path, case):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    args = {
        "missing": [str(tmp_path / "nope.safetensors"), "--name", "X"],
        "not_a_checkpoint": [str(junk), "--name", "X"],
        "eps_for_v": [tiny_models.v_file, "--name", "X", "--prediction", "eps"],
        "bad_lora": [tiny_models.eps_file, "--name", "X", "--lora", f"{junk}:0.5"],
        "unknown_parent": [tiny_models.eps_file, "--name", "X", "--parent", "nobody"],
    }[case]
    with pytest.raises(CommandError) as info:
        call_command("register_model", *args)
    assert "\n" not in str(info.value) and str(info.value)
    assert not ModelVariant.objects.exists() and not VariantLora.objects.exists()


def test_register_model_bad_path_exits_non_zero_with_one_line_and_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "register_model", str(tmp_path / "missing.safetensors"), "--name", "X"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"},
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "missing.safetensors" in lines[0] and "Traceback" not in result.stderr


def test_admin_add_form_checks_the_checkpoint(client, tiny_models, tmp_path):
    client.force_login(get_user_model().objects.create_user("admin", is_staff=True, is_superuser=True))
    url = reverse("admin:generation_modelvariant_add")
    base = {"name": "Admin tiny", "family": "Illustrious XL", "version": "", "kind": "base", "prediction_type": "eps",
            "source_type": "single_file", "config_path": "", "description": "", "sampler": "Euler a", "steps": 2,
            "cfg_scale": 5, "width": 256, "height": 256, "clip_skip": 1, "guidance_rescale": 0, "enabled": "on",
            "health": "ok", "matchmaking_weight": 1, **ADMIN_HIRES_DEFAULTS,
            "loras-TOTAL_FORMS": 0, "loras-INITIAL_FORMS": 0, "loras-MIN_NUM_FORMS": 0, "loras-MAX_NUM_FORMS": 1000}
    response = client.post(url, {**base, "source_path": str(tmp_path / "nope.safetensors")})
    assert response.status_code == 200 and "no such file" in response.content.decode()
    assert not ModelVariant.objects.exists()
    response = client.post(url, {**base, "source_path": tiny_models.v_file, "source_type": "diffusers"})
    assert response.status_code == 200 and "v_pred" in response.content.decode()  # an eps claim for a v checkpoint
    response = client.post(url, {**base, "source_path": tiny_models.v_file, "prediction_type": "v"})
    assert response.status_code == 302
    variant = ModelVariant.objects.get()
    assert (variant.source_type, variant.has_ztsnr) == ("single_file", True)


def test_admin_saves_a_variant_and_its_loras_through_the_registry_service(client, tiny_models, tmp_path):
    client.force_login(get_user_model().objects.create_user("admin", is_staff=True, is_superuser=True))
    base = {"name": "Admin LoRA", "family": "Illustrious XL", "version": "", "kind": "finetune", "prediction_type": "eps",
            "source_type": "single_file", "source_path": tiny_models.eps_file, "config_path": "", "description": "",
            "sampler": "Euler a", "steps": 2, "cfg_scale": 5, "width": 256, "height": 256, "clip_skip": 1,
            "guidance_rescale": 0, "enabled": "on", "health": "ok", "matchmaking_weight": 1, **ADMIN_HIRES_DEFAULTS,
            "loras-INITIAL_FORMS": 0, "loras-MIN_NUM_FORMS": 0, "loras-MAX_NUM_FORMS": 1000}
    add = reverse("admin:generation_modelvariant_add")
    (tmp_path / "junk.safetensors").write_bytes(b"not a LoRA")
    response = client.post(add, {**base, "loras-TOTAL_FORMS": 1, "loras-0-path": str(tmp_path / "junk.safetensors"),
                                 "loras-0-weight": 0.5, "loras-0-position": 0})
    assert response.status_code == 200 and "junk.safetensors" in response.content.decode()
    assert not ModelVariant.objects.exists()
    response = client.post(add, {**base, "loras-TOTAL_FORMS": 1, "loras-0-path": tiny_models.lora_kohya,
                                 "loras-0-weight": 0.5, "loras-0-position": 0})
    assert response.status_code == 302
    variant = ModelVariant.objects.get()
    lora = variant.loras.get()
    assert (lora.path, lora.weight, lora.format) == (str(Path(tiny_models.lora_kohya).resolve()), 0.5, "kohya")
    assert variant.source_path == str(Path(tiny_models.eps_file).resolve())

    change = reverse("admin:generation_modelvariant_change", args=[variant.pk])
    response = client.post(change, {**base, "loras-TOTAL_FORMS": 1, "loras-INITIAL_FORMS": 1, "loras-0-id": lora.pk,
                                    "loras-0-variant": variant.pk, "loras-0-path": lora.path, "loras-0-weight": -1.0,
                                    "loras-0-position": 0})
    assert response.status_code == 302
    assert list(variant.loras.values_list("id", "weight")) == [(lora.pk, -1.0)]
    response = client.post(change, {**base, "loras-TOTAL_FORMS": 1, "loras-INITIAL_FORMS": 1, "loras-0-id": lora.pk,
                                    "loras-0-variant": variant.pk, "loras-0-path": lora.path, "loras-0-weight": -1.0,
                                    "loras-0-position": 0, "loras-0-DELETE": "on"})
    assert response.status_code == 302 and not variant.loras.exists()


def test_job_matrix_on_tiny_models_loads_each_model_once_and_redelivery_adds_nothing(
        tiny_models, fresh_cache, settings, django_capture_on_commit_callbacks):
    settings.GENERATION_BATCH_SIZE = 2
    eps = _register(tiny_models.eps_file, "Tiny eps", width=256, height=256, steps=2)
    v = _register(tiny_models.v_dir, "Tiny v", prediction="v", width=256, height=256, steps=2)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(variants=[eps, v], prompt_set=make_prompt_set(n=2), seeds=[1, 2])
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.DONE, list(job.tasks.values_list("error", flat=True))
    assert Image.objects.filter(job=job).count() == 8
    assert fresh_cache.loads == 2
    image = Image.objects.filter(job=job).first()
    assert (image.width, image.height) == (256, 256) and image.seconds > 0
    ids = list(job.tasks.values_list("id", flat=True))
    assert run_tasks.apply(args=[ids]).get()["claimed"] == 0
    assert Image.objects.count() == 8 and fresh_cache.loads == 2
    progress = selectors.job_progress(job=job)
    assert (progress.done, progress.total, progress.eta_seconds) == (8, 8, 0.0) and progress.seconds_per_image > 0

    # a free-prompt duel with the same (cached) models: one common size, each model's own sampler settings
    prompt = Prompt.objects.create(text="general, 1girl, smile", negative_prompt="lowres", source=Prompt.Source.FREE)
    with django_capture_on_commit_callbacks(execute=True):
        tasks = services.tasks_create_live(prompt=prompt, variants=[eps, v], seed=11, width=256, height=320)
    state = selectors.tasks_live_state(task_ids=[t.pk for t in tasks])
    assert state.ready, state.errors
    assert [(i.width, i.height) for i in state.images] == [(256, 320), (256, 320)]
    from PIL import Image as PILImage
    assert {PILImage.open(i.voter_file).size for i in state.images} == {(256, 320)}
    assert fresh_cache.loads == 2


def test_a_model_that_fails_to_load_is_marked_failing(tiny_models, fresh_cache, tmp_path, django_capture_on_commit_callbacks):
    broken_file = tmp_path / "broken.safetensors"
    data = Path(tiny_models.eps_file).read_bytes()
    broken_file.write_bytes(data[: len(data) // 2])  # a truncated download
    variant = ModelVariant.objects.create(name="Broken", source_type="single_file", source_path=str(broken_file),
                                          width=256, height=256, steps=2)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(variants=[variant], prompt_set=make_prompt_set(n=1), seeds=[1])
    variant.refresh_from_db()
    task = job.tasks.get()
    assert variant.health == ModelVariant.Health.FAILING and variant.health_message
    assert task.status == "failed" and "Broken failed to load" in task.error and "\n" not in task.error
