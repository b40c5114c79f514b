"""A1111's settings through the Django side: schedule type and hires pass as job settings (model fields, settings
key, checks, the job form and page), old combined sampler names, and the worker handing every setting to the
pipelines. The references (the settings key as it was computed before these fields existed, A1111's sampler and
schedule resolution and its PNG reader) are written out here and in a1111_reference.py, not taken from our code."""

import hashlib
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from PIL import Image as PILImage

from generation import images as png
from generation import selectors, services
from generation.models import GenerationJob, GenerationTask, Image, ModelVariant, Prompt
from generation.sampling import SamplerSettings
from tests.generation.a1111_reference import a1111_parse, a1111_sampler_and_scheduler, a1111_txt2img
from tests.generation.helpers import fake_pipelines, make_prompt_set, make_variant  # noqa: F401

pytestmark = pytest.mark.django_db
BASE = dict(seed=1, sampler="Euler a", steps=28, cfg_scale=6.0, width=832, height=1216, clip_skip=2,
            negative_prompt="lowres")


def key_before_this_issue(**settings) -> str:
    """The settings key as generation/sampling.py computed it before schedule types and hires existed: sha256 of
    the eight settings as sorted, compact JSON (floats rounded to 4 places, whitespace of the negative folded)."""
    canonical = {}
    for name, value in settings.items():
        if isinstance(value, float):
            value = round(value, 4)
        elif isinstance(value, str):
            value = " ".join(value.split()) if name == "negative_prompt" else value.strip()
        canonical[name] = value
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


# -- the settings key ---------------------------------------------------------------------------------------------


def test_new_settings_at_their_defaults_leave_the_key_as_it_was():
    before = key_before_this_issue(**BASE)
    assert SamplerSettings(**BASE).key == before
    # Euler a's Automatic schedule is Uniform: the same settings, one spelling, one key
    assert SamplerSettings(**BASE, schedule_type="Uniform").key == before
    # with the hires pass off its settings change nothing
    assert SamplerSettings(**BASE, hr_scale=1.5, hr_second_pass_steps=9, denoising_strength=0.3).key == before
    for changed in (dict(schedule_type="Karras"), dict(enable_hr=True), dict(enable_hr=True, hr_scale=1.5),
                    dict(enable_hr=True, denoising_strength=0.4), dict(enable_hr=True, hr_upscaler="Lanczos"),
                    dict(enable_hr=True, hr_second_pass_steps=10)):
        assert SamplerSettings(**BASE, **changed).key != before, changed
    # A1111: hires steps equal to the steps are "0, same as steps"
    assert (SamplerSettings(**BASE, enable_hr=True, hr_second_pass_steps=28).key
            == SamplerSettings(**BASE, enable_hr=True).key)


def test_an_existing_image_keeps_its_key_through_the_migrations(transactional_db):
    """Rows made before this issue: a canonical one keeps its key; an old combined name becomes A1111's pair (and
    its settings' key) unless the model already has an image under that key; a model's old default is renamed."""
    executor = MigrationExecutor(connection)
    before, after = [("generation", "0002_registry_loras_claims")], [("generation", "0004_canonical_sampler_names")]
    try:
        executor.migrate(before)
        old = executor.loader.project_state(before).apps
        Variant, Prompt_, Image_ = (old.get_model("generation", name) for name in ("ModelVariant", "Prompt", "Image"))
        variant = Variant.objects.create(name="Old", sampler="DPM++ 2M Karras")
        prompt = Prompt_.objects.create(text="1girl")

        def image(seed, sampler):
            settings = {**BASE, "seed": seed, "sampler": sampler}
            return Image_.objects.create(variant=variant, prompt=prompt, settings_key=key_before_this_issue(**settings),
                                         file=f"img/{seed}.png", voter_file=f"v/{seed}.png", **settings)

        plain, legacy = image(1, "Euler a"), image(2, "DPM++ 2M SDE Karras")
        taken, clash = image(3, "DPM++ 2M"), image(3, "DPM++ 2M Karras")  # Karras is DPM++ 2M's Automatic now
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps.get_model("generation", "Image")
        rows = {row.pk: row for row in new.objects.all()}
        assert (rows[plain.pk].settings_key, rows[plain.pk].schedule_type) == (plain.settings_key, "Automatic")
        assert rows[taken.pk].settings_key == taken.settings_key
        assert (rows[legacy.pk].sampler, rows[legacy.pk].schedule_type) == ("DPM++ 2M SDE", "Karras")
        assert rows[legacy.pk].settings_key == key_before_this_issue(**{**BASE, "seed": 2, "sampler": "DPM++ 2M SDE",
                                                                          "schedule_type": "Karras"})
        assert (rows[clash.pk].sampler, rows[clash.pk].settings_key) == ("DPM++ 2M Karras", clash.settings_key)
        migrated = executor.loader.project_state(after).apps.get_model("generation", "ModelVariant").objects.get()
        assert (migrated.sampler, migrated.schedule_type) == ("DPM++ 2M", "Automatic")
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


# -- old names, schedule types and the hires checks in jobs --------------------------------------------------------


@pytest.mark.parametrize("sampler, schedule_type", [
    ("DPM++ 2M Karras", None), ("DPM++ 2M SDE Karras", None), ("DPM++ SDE Karras", None), ("DPM++ 2M", "Karras"),
    ("DPM++ 2M", "Exponential"), ("Euler a", "Karras"), ("Euler", "SGM Uniform"), ("DPM++ 3M SDE Exponential", None),
])
def test_old_combined_names_and_schedule_types_make_a1111s_pair_in_a_job(sampler, schedule_type,
                                                                         django_capture_on_commit_callbacks):
    variant = make_variant("A")
    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_create(variants=[variant], prompt_set=make_prompt_set(n=1), seeds=[1], sampler=sampler,
                                  schedule_type=schedule_type)
    task = job.tasks.get()
    assert (task.sampler, task.schedule_type) == a1111_sampler_and_scheduler(sampler, schedule_type or "Automatic")
    assert task.settings_key == task.sampler_settings.key


def test_a_sampler_picked_for_a_job_samples_on_its_own_default_schedule(django_capture_on_commit_callbacks):
    variant = make_variant("A", sampler="DPM++ 2M SDE", schedule_type="Karras")
    with django_capture_on_commit_callbacks(execute=False):
        own = services.job_create(variants=[variant], prompt_set=make_prompt_set("Own", n=1), seeds=[1])
        picked = services.job_create(variants=[variant], prompt_set=make_prompt_set("Picked", n=1), seeds=[1],
                                     sampler="DPM++ 2M")
    assert (own.tasks.get().sampler, own.tasks.get().schedule_type) == ("DPM++ 2M SDE", "Karras")
    assert (picked.tasks.get().sampler, picked.tasks.get().schedule_type) == ("DPM++ 2M", "Automatic")


@pytest.mark.parametrize("kwargs, field, message", [
    ({"schedule_type": "Align Your Steps"}, "schedule_type", "not supported here"),
    ({"schedule_type": "Fancy"}, "schedule_type", "unknown schedule type"),
    ({"sampler": "DDIM", "schedule_type": "Karras"}, "schedule_type", "own timesteps"),
    ({"sampler": "DDIM", "steps": 1}, "steps", "steps must be 2–150 for DDIM"),
    ({"enable_hr": True, "hr_scale": 0.5}, "hr_scale", "hires upscale must be 1–4"),
    ({"enable_hr": True, "hr_scale": 4.5}, "hr_scale", "hires upscale must be 1–4"),
    ({"enable_hr": True, "hr_scale": 2.0, "width": 1024, "height": 1536}, "hr_scale", "2048×3072"),
    ({"enable_hr": True, "denoising_strength": 0.0}, "denoising_strength", "above 0"),
    ({"enable_hr": True, "denoising_strength": 1.5}, "denoising_strength", "at most 1"),
    ({"enable_hr": True, "hr_upscaler": "R-ESRGAN 4x+"}, "hr_upscaler", "unknown hires upscaler"),
    ({"enable_hr": True, "hr_second_pass_steps": 151}, "hr_second_pass_steps", "hires steps must be 0"),
    ({"enable_hr": True, "sampler": "DDIM", "steps": 20, "denoising_strength": 0.01}, "denoising_strength",
     "schedule of 2000 steps"),
])
def test_job_create_refuses_bad_schedule_and_hires_settings_in_one_line_and_saves_nothing(kwargs, field, message):
    variant = make_variant("A", width=832, height=1216)
    with pytest.raises(ValidationError) as info:
        services.job_create(variants=[variant], prompt_set=make_prompt_set(n=1), seeds=[1], **kwargs)
    messages = info.value.message_dict[field]
    assert any(message in m for m in messages) and all("\n" not in m for m in messages), messages
    assert not GenerationJob.objects.exists() and not GenerationTask.objects.exists()


def test_hires_at_one_step_and_half_denoise_is_a_valid_job(django_capture_on_commit_callbacks):
    variant = make_variant("A")
    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_create(variants=[variant], prompt_set=make_prompt_set(n=1), seeds=[1], steps=1,
                                  enable_hr=True, hr_scale=1.5, denoising_strength=0.5)
    task = job.tasks.get()
    assert (task.steps, task.enable_hr, task.hr_scale, task.denoising_strength, task.output_size) == (
        1, True, 1.5, 0.5, (384, 384))


def test_a_models_defaults_are_checked_and_stored_as_a1111s_pair():
    variant = ModelVariant(name="Imported", source_type="none", sampler="DPM++ 2M SDE Karras", enable_hr=True,
                           hr_scale=9.0, guidance_rescale=1.5)
    with pytest.raises(ValidationError) as info:
        services.variant_save(variant=variant)
    assert "hires upscale must be 1–4" in info.value.message_dict["hr_scale"][0]
    assert info.value.message_dict["guidance_rescale"] == ["CFG rescale must be 0–1 (0 = off)"]
    assert not ModelVariant.objects.exists()
    variant.hr_scale, variant.guidance_rescale = 1.5, 0.7
    services.variant_save(variant=variant)
    variant.refresh_from_db()
    assert (variant.sampler, variant.schedule_type, variant.enable_hr, variant.hr_scale) == (
        "DPM++ 2M SDE", "Karras", True, 1.5)


# -- the worker hands every setting to the pipelines, and the PNG says what was done -----------------------------


def test_the_worker_passes_every_setting_and_the_png_reads_back_in_a1111(fake_pipelines,
                                                                          django_capture_on_commit_callbacks):
    variant = make_variant("Tiny v", prediction_type="v", guidance_rescale=0.7, clip_skip=2, width=256, height=256)
    prompt_set = make_prompt_set(n=1)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(variants=[variant], prompt_set=prompt_set, seeds=[42], sampler="DPM++ 2M SDE",
                                  schedule_type="Karras", steps=6, cfg_scale=4.5, enable_hr=True, hr_scale=1.5,
                                  hr_second_pass_steps=3, denoising_strength=0.45, hr_upscaler="Lanczos")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.DONE, list(job.tasks.values_list("error", flat=True))
    (request,) = fake_pipelines.requests
    assert {name: getattr(request, name) for name in (
        "prompt", "negative_prompt", "seed", "sampler", "schedule_type", "steps", "cfg_scale", "width", "height",
        "clip_skip", "guidance_rescale", "enable_hr", "hr_scale", "hr_second_pass_steps", "denoising_strength",
        "hr_upscaler")} == {
        "prompt": "1girl, solo, prompt 0", "negative_prompt": "worst quality", "seed": 42, "sampler": "DPM++ 2M SDE",
        "schedule_type": "Karras", "steps": 6, "cfg_scale": 4.5, "width": 256, "height": 256, "clip_skip": 2,
        "guidance_rescale": 0.7, "enable_hr": True, "hr_scale": 1.5, "hr_second_pass_steps": 3,
        "denoising_strength": 0.45, "hr_upscaler": "Lanczos"}
    image = Image.objects.get()
    assert (image.width, image.height, image.output_size) == (256, 256, (384, 384))
    assert PILImage.open(image.voter_file).size == (384, 384)
    text = png.png_text_chunks(image.file.read())["parameters"]
    read = a1111_parse(text)
    assert a1111_txt2img(read) | {"lora_hashes": None} == {
        "prompt": "1girl, solo, prompt 0", "negative_prompt": "worst quality", "steps": 6,
        "sampler_name": "DPM++ 2M SDE", "scheduler": "Karras", "cfg_scale": 4.5, "seed": 42, "width": 256,
        "height": 256, "CLIP_stop_at_last_layers": 2, "enable_hr": True, "hr_scale": 1.5, "hr_second_pass_steps": 3,
        "denoising_strength": 0.45, "hr_upscaler": "Lanczos", "sd_model_checkpoint": "Tiny v", "model_name": "Tiny v",
        "lora_hashes": None, "rng": "CPU"}
    assert (read["Rescale CFG"], read["Noise Schedule"]) == ("0.7", "Zero Terminal SNR")


def test_live_tasks_take_the_models_schedule_but_no_hires_and_refuse_lora_tags(django_capture_on_commit_callbacks):
    a = make_variant("A", sampler="DPM++ 2M", schedule_type="Exponential", enable_hr=True, hr_scale=1.5)
    b = make_variant("B")
    prompt = Prompt.objects.create(text="1girl, smile", source=Prompt.Source.FREE)
    with django_capture_on_commit_callbacks(execute=False):
        tasks = services.tasks_create_live(prompt=prompt, variants=[a, b], seed=5, width=256, height=256)
    assert [(t.sampler, t.schedule_type, t.enable_hr, t.output_size) for t in tasks] == [
        ("DPM++ 2M", "Exponential", False, (256, 256)), ("Euler a", "Automatic", False, (256, 256))]
    for text, message in (("1girl, <lora:style:0.8>", "voters' prompts may not apply LoRAs"),
                          ("a [cat:dog:0.5]", "prompt editing")):
        tagged = Prompt.objects.create(text=text, source=Prompt.Source.FREE)
        with pytest.raises(ValidationError, match=message.replace("[", "\\[")):
            services.tasks_create_live(prompt=tagged, variants=[a, b], seed=5, width=256, height=256)
    assert GenerationTask.objects.count() == 2


# -- the job form and page ------------------------------------------------------------------------------------------


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_user("admin", is_staff=True)
    client.force_login(user)
    return user


FORM = {"name": "", "prompt_text": "", "sampler": "", "schedule_type": "", "steps": "", "cfg_scale": "", "width": "",
        "height": "", "clip_skip": "", "enable_hr": "", "hr_upscaler": "", "hr_second_pass_steps": "",
        "denoising_strength": "", "hr_scale": "", "negative_prompt": ""}


def test_the_job_form_offers_a1111s_settings_and_the_job_page_says_them_in_words(client, staff,
                                                                                   django_capture_on_commit_callbacks):
    variant = make_variant("A")
    page = client.get(reverse("generation:jobs")).content.decode()
    for label in ("Sampling method", "Schedule type", "Sampling steps", "CFG scale", "Clip skip", "Hires. fix",
                  "Upscaler", "Hires steps", "Denoising strength", "Upscale by"):
        assert f"{label}:</label>" in page, label
    assert '<option value="SGM Uniform">' in page and '<option value="Latent (nearest-exact)">' in page
    assert "If 0, uses same as for original" in page  # A1111's own hint
    prompt_set = make_prompt_set(n=1)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("generation:jobs"), {
            **FORM, "variants": [variant.pk], "prompt_set": prompt_set.pk, "seeds": "1-2", "sampler": "DPM++ 2M SDE",
            "schedule_type": "Karras", "steps": "20", "enable_hr": "on", "hr_upscaler": "Latent (bicubic)",
            "hr_second_pass_steps": "10", "denoising_strength": "0.45", "hr_scale": "1.5"})
    assert response.status_code == 302
    job = GenerationJob.objects.get()
    assert set(job.tasks.values_list("sampler", "schedule_type", "steps", "enable_hr", "hr_upscaler",
                                     "hr_second_pass_steps", "denoising_strength", "hr_scale")) == {
        ("DPM++ 2M SDE", "Karras", 20, True, "Latent (bicubic)", 10, 0.45, 1.5)}
    html = client.get(reverse("generation:job", args=[job.pk])).content.decode()
    assert ("Settings: seeds 1, 2 · DPM++ 2M SDE · schedule Karras · 20 steps · hires fix: upscale by 1.5, "
            "Latent (bicubic), 10 hires steps, denoising strength 0.45 · other settings: each model&#x27;s default") in html
    assert selectors.job_settings_words(job=job)[0] == "seeds 1, 2"


def test_the_job_page_says_what_automatic_means_for_the_sampler(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_create(variants=[make_variant("A")], prompt_set=make_prompt_set(n=1), seeds=[3],
                                  sampler="DPM++ 2M", enable_hr=False, negative_prompt="")
    assert selectors.job_settings_words(job=job) == [
        "seed 3", "DPM++ 2M", "schedule Automatic (Karras)", "no hires fix", "no negative prompt",
        "other settings: each model's default"]


def test_bad_hires_settings_in_the_form_show_one_line_and_save_nothing(client, staff):
    variant = make_variant("A", width=1024, height=1024)
    response = client.post(reverse("generation:jobs"), {
        **FORM, "variants": [variant.pk], "prompt_text": "1girl", "seeds": "1", "enable_hr": "on", "hr_scale": "2.5"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "upscaled ×2.5 the image would be 2560×2560" in html
    assert not GenerationJob.objects.exists() and not Prompt.objects.exists()
    response = client.post(reverse("generation:jobs"), {
        **FORM, "variants": [variant.pk], "prompt_text": "1girl", "seeds": "1", "enable_hr": "on",
        "denoising_strength": "0"})
    assert response.status_code == 400 and not GenerationJob.objects.exists()


def test_a_stored_image_of_another_size_than_its_hires_size_is_refused():
    variant = make_variant("A")
    prompt = Prompt.objects.create(text="1girl")
    settings = SamplerSettings(**{**BASE, "width": 256, "height": 256}, enable_hr=True, hr_scale=1.25)
    with pytest.raises(ValidationError, match="not 320×320"):
        services.image_store(variant=variant, prompt=prompt, image=PILImage.new("RGB", (256, 256)), settings=settings)
    stored = services.image_store(variant=variant, prompt=prompt, image=PILImage.new("RGB", (320, 320)), settings=settings)
    read = a1111_parse(PILImage.open(io.BytesIO(stored.file.read())).text["parameters"])
    assert (read["Size-1"], read["Size-2"], read["Hires upscale"], read["Denoising strength"]) == ("256", "256", "1.25", "0.7")
