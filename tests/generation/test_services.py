"""Services of the generation app: settings keys, image storage, prompt sets, jobs, live tasks."""

import io
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from PIL import Image as PILImage

from generation import images as png
from generation import services
from generation.models import Character, GenerationJob, GenerationTask, Image, Prompt, PromptSet
from tests.generation.helpers import fake_pipelines, make_prompt_set, make_variant, sampler_settings  # noqa: F401

pytestmark = pytest.mark.django_db

KEY_ARGS = dict(seed=1, sampler="Euler a", steps=28, cfg_scale=7, width=832, height=1216, clip_skip=1,
                negative_prompt="worst quality")


def test_settings_key_is_canonical_and_covers_every_setting():
    key = services.settings_key_for(**KEY_ARGS)
    assert len(key) == 64 and int(key, 16) >= 0
    assert services.settings_key_for(**{**KEY_ARGS, "cfg_scale": 7.0}) == key
    assert services.settings_key_for(**{**KEY_ARGS, "negative_prompt": " worst  quality "}) == key
    for name, value in [("seed", 2), ("sampler", "Euler"), ("steps", 20), ("cfg_scale", 6.5), ("width", 1024),
                        ("height", 1024), ("clip_skip", 2), ("negative_prompt", "lowres")]:
        assert services.settings_key_for(**{**KEY_ARGS, name: value}) != key, name


def _store(variant, prompt, seed=3, size=(256, 256)):
    return services.image_store(variant=variant, prompt=prompt, image=PILImage.new("RGB", size, (seed, 2, 3)),
                                settings=sampler_settings(seed=seed, steps=20, cfg_scale=6.0, width=size[0],
                                                          height=size[1], negative_prompt="lowres"),
                                seconds=0.5, worker="w1")


def _media_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_image_store_writes_parameters_on_the_original_and_nothing_on_the_voter_copy(settings):
    variant = make_variant("Illustrious v1")
    prompt = Prompt.objects.create(text="1girl, solo, smile")
    image = _store(variant, prompt)
    image.refresh_from_db()
    original = image.file.read()
    assert png.png_text_chunks(original) == {"parameters": (
        "1girl, solo, smile\nNegative prompt: lowres\n"
        "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 6, Seed: 3, Size: 256x256, "
        "Model: Illustrious v1, RNG: CPU, Version: arena")}
    voter = image.voter_file.read()
    assert png.png_text_chunks(voter) == {} and b"tEXt" not in voter and b"iTXt" not in voter
    assert PILImage.open(io.BytesIO(voter)).size == (256, 256)
    assert PILImage.open(image.thumb).format == "WEBP"
    assert image.settings_key == services.settings_key_for(seed=3, sampler="Euler a", steps=20, cfg_scale=6.0, width=256,
                                                          height=256, clip_skip=1, negative_prompt="lowres")
    for name in (image.file.name, image.voter_file.name, image.thumb.name):  # opaque names
        assert "Illustrious" not in name and "smile" not in name and "_3" not in name


def test_image_store_twice_keeps_one_image_and_no_extra_files(settings):
    variant = make_variant("A")
    prompt = Prompt.objects.create(text="1girl")
    first = _store(variant, prompt)
    files = _media_files(settings)
    second = _store(variant, prompt)
    assert second.pk == first.pk
    assert Image.objects.count() == 1
    assert _media_files(settings) == files and len(files) == 3


def test_image_store_refuses_an_image_of_another_size():
    variant = make_variant("A")
    prompt = Prompt.objects.create(text="1girl")
    with pytest.raises(ValidationError):
        services.image_store(variant=variant, prompt=prompt, image=PILImage.new("RGB", (64, 64)),
                             settings=sampler_settings(seed=1, steps=2, cfg_scale=5, width=256, height=256))
    assert Image.objects.count() == 0


def test_prompt_set_import_from_text_and_csv_is_idempotent():
    text = "# demo\n1girl, solo\n\n1boy, smile\n"
    prompt_set = services.prompt_set_import(name="Demo", data=text.encode(), filename="demo.txt")
    assert list(prompt_set.prompts.values_list("text", flat=True)) == ["1girl, solo", "1boy, smile"]
    services.prompt_set_import(name="Demo", data=text.encode(), filename="demo.txt")
    assert prompt_set.prompts.count() == 2
    csv_data = "prompt,negative_prompt,character\n\"hatsune miku, 1girl\",lowres,Hatsune Miku\n1girl,,\n".encode()
    csv_set = services.prompt_set_import(name="Chars", data=csv_data, filename="chars.csv", negative_prompt="bad hands")
    rows = list(csv_set.prompts.values_list("text", "negative_prompt", "character__name"))
    assert rows == [("hatsune miku, 1girl", "lowres", "Hatsune Miku"), ("1girl", "bad hands", None)]
    assert Character.objects.filter(name="Hatsune Miku").exists()


def test_prompt_set_import_refuses_a_csv_without_prompt_column():
    with pytest.raises(ValidationError, match="prompt"):
        services.prompt_set_import(name="Bad", data=b"caption,x\na,b\n", filename="bad.csv")
    assert not PromptSet.objects.exists() and not Prompt.objects.exists()


def test_job_create_expands_the_matrix_with_model_defaults(django_capture_on_commit_callbacks):
    a, b = make_variant("A", steps=3), make_variant("B", steps=5, cfg_scale=4.0)
    prompt_set = make_prompt_set(n=2)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = services.job_create(variants=[a, b], prompt_set=prompt_set, seeds=[1, 2, 2])
    assert len(callbacks) == 1  # enqueued on commit only
    assert job.tasks.count() == 2 * 2 * 2
    assert set(job.tasks.filter(variant=b).values_list("steps", "cfg_scale")) == {(5, 4.0)}
    assert set(job.tasks.values_list("negative_prompt", flat=True)) == {"worst quality"}
    assert job.status == GenerationJob.Status.PENDING and job.prompt_set == prompt_set


def test_job_create_with_pasted_prompts_and_overrides_reuses_pasted_prompts(django_capture_on_commit_callbacks):
    a = make_variant("A")
    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_create(variants=[a], prompt_text="1girl\n1boy\n", seeds=[7], steps=4, width=512, height=256,
                                  negative_prompt="lowres")
        again = services.job_create(variants=[a], prompt_text="1girl\n", seeds=[8], negative_prompt="lowres")
    assert set(job.tasks.values_list("steps", "width", "height", "negative_prompt")) == {(4, 512, 256, "lowres")}
    assert again.tasks.get().prompt_id == job.tasks.get(prompt__text="1girl").prompt_id
    assert Prompt.objects.count() == 2


@pytest.mark.parametrize("kwargs, field", [
    ({"seeds": []}, "seeds"),
    ({"seeds": [-1]}, "seeds"),
    ({"width": 300}, "width"),
    ({"width": 2048, "height": 2560}, "width"),
    ({"sampler": "Magic"}, "sampler"),
    ({"prompt_text": "1girl"}, "prompts"),  # and a prompt set: one of them only
])
def test_job_create_refuses_bad_input_and_saves_nothing(kwargs, field):
    a = make_variant("A")
    prompt_set = make_prompt_set()
    arguments = {"variants": [a], "prompt_set": prompt_set, "seeds": [1], **kwargs}
    with pytest.raises(ValidationError) as info:
        services.job_create(**arguments)
    assert field in info.value.message_dict
    assert not GenerationJob.objects.exists() and not GenerationTask.objects.exists()
    assert Prompt.objects.count() == 2


def test_job_create_refuses_disabled_and_weightless_models():
    disabled = make_variant("Off", enabled=False)
    imported = make_variant("Imported", source_type="none", source_path="")
    with pytest.raises(ValidationError) as info:
        services.job_create(variants=[disabled, imported], prompt_set=make_prompt_set(), seeds=[1])
    assert len(info.value.message_dict["variants"]) == 2


def test_job_create_skips_images_that_exist(django_capture_on_commit_callbacks):
    a = make_variant("A")
    prompt_set = make_prompt_set(n=1)
    prompt = prompt_set.prompts.get()
    services.image_store(variant=a, prompt=prompt, image=PILImage.new("RGB", (256, 256)),
                         settings=sampler_settings(seed=1, steps=2, cfg_scale=5.0, width=256, height=256,
                                                   negative_prompt="worst quality"))
    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_create(variants=[a], prompt_set=prompt_set, seeds=[1, 2])
    assert list(job.tasks.values_list("seed", flat=True)) == [2]
    assert job.settings["skipped_existing"] == 1


def test_job_cancel_and_retry_failed(django_capture_on_commit_callbacks):
    a = make_variant("A")
    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_create(variants=[a], prompt_set=make_prompt_set(n=1), seeds=[1, 2, 3])
    first, second, third = job.tasks.order_by("id")
    GenerationTask.objects.filter(pk=first.pk).update(status="failed", error="boom")
    GenerationTask.objects.filter(pk=second.pk).update(status="running")
    assert services.job_cancel(job=job) == 1
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert dict(job.tasks.values_list("id", "status")) == {first.pk: "failed", second.pk: "running", third.pk: "cancelled"}
    with pytest.raises(ValidationError):
        services.job_cancel(job=job)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.job_retry_failed(job=job) == 1
    assert len(callbacks) == 1
    first.refresh_from_db()
    assert (first.status, first.error, first.attempts) == ("pending", "", 0)
    with pytest.raises(ValidationError):
        services.job_retry_failed(job=job)


def test_tasks_create_live_uses_each_model_defaults_at_one_size(django_capture_on_commit_callbacks):
    a = make_variant("A", sampler="Euler a", steps=3, cfg_scale=6.0, width=832, height=1216)
    b = make_variant("B", sampler="DPM++ 2M Karras", steps=4, cfg_scale=4.0, width=1024, height=1024)
    prompt = Prompt.objects.create(text="general, 1girl, cat ears", negative_prompt="lowres", source=Prompt.Source.FREE)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks = services.tasks_create_live(prompt=prompt, variants=[a, b], seed=99, width=256, height=384)
    assert len(callbacks) == 1
    # B's default, stored under the old combined name, is A1111 >= 1.6's pair: DPM++ 2M on its own default (Karras)
    assert [(t.variant_id, t.sampler, t.schedule_type, t.steps, t.cfg_scale, t.width, t.height, t.negative_prompt,
             t.job_id) for t in tasks] == [
        (a.pk, "Euler a", "Automatic", 3, 6.0, 256, 384, "lowres", None),
        (b.pk, "DPM++ 2M", "Automatic", 4, 4.0, 256, 384, "lowres", None)]


def test_tasks_create_live_refuses_bad_sizes_and_single_models():
    a, b = make_variant("A"), make_variant("B")
    prompt = Prompt.objects.create(text="1girl", source=Prompt.Source.FREE)
    with pytest.raises(ValidationError):
        services.tasks_create_live(prompt=prompt, variants=[a, b], seed=1, width=250, height=256)
    with pytest.raises(ValidationError):
        services.tasks_create_live(prompt=prompt, variants=[a], seed=1, width=256, height=256)
    assert not GenerationTask.objects.exists()


def test_tasks_cancel_cancels_what_has_not_started(django_capture_on_commit_callbacks):
    a, b = make_variant("A"), make_variant("B")
    prompt = Prompt.objects.create(text="1girl", source=Prompt.Source.FREE)
    with django_capture_on_commit_callbacks(execute=False):
        first, second = services.tasks_create_live(prompt=prompt, variants=[a, b], seed=1, width=256, height=256)
    GenerationTask.objects.filter(pk=second.pk).update(status="running")
    assert services.tasks_cancel(task_ids=[first.pk, second.pk], error="the voter's duel timed out") == 1
    assert dict(GenerationTask.objects.values_list("id", "status")) == {first.pk: "cancelled", second.pk: "running"}
    assert GenerationTask.objects.get(pk=first.pk).error == "the voter's duel timed out"


def test_the_worker_sizes_its_pipeline_cache_from_the_setting(settings):
    from generation import pipelines
    from generation.services import worker

    settings.PIPELINE_CACHE_SIZE = 3
    previous = pipelines.set_pipeline_cache(None)
    try:
        assert worker._pipeline_cache(pipelines).max_entries == 3
        installed = pipelines.PipelineCache(max_entries=1)
        pipelines.set_pipeline_cache(installed)
        assert worker._pipeline_cache(pipelines) is installed  # one installed already (a test, the benchmark) stays
    finally:
        pipelines.set_pipeline_cache(previous)


def test_sampler_settings_of_a_row_and_its_key(django_capture_on_commit_callbacks):
    a = make_variant("A", clip_skip=2)
    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_create(variants=[a], prompt_set=make_prompt_set(n=1), seeds=[5])
    task = job.tasks.get()
    expected = services.SamplerSettings(seed=5, sampler="Euler a", steps=2, cfg_scale=5.0, width=256, height=256,
                                        clip_skip=2, negative_prompt="worst quality")
    assert task.sampler_settings == expected and task.settings_key == expected.key
    assert expected.key == services.settings_key_for(**expected.as_dict())


def test_lora_check_tells_kohya_from_diffusers_and_refuses_other_files(tmp_path):
    import json
    import struct

    def write(name, keys):
        header = json.dumps({k: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]} for k in keys}).encode()
        path = tmp_path / name
        path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0\0\0")
        return str(path)

    assert services.lora_check(path=write("k.safetensors", ["lora_unet_down_blocks_0.lora_down.weight", "lora_unet_x.alpha"])) == "kohya"
    assert services.lora_check(path=write("d.safetensors", ["unet.down.lora_A.weight"])) == "diffusers"
    with pytest.raises(ValidationError, match="no LoRA keys"):
        services.lora_check(path=write("m.safetensors", ["model.diffusion_model.x.weight"]))
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValidationError):
        services.lora_check(path=str(tmp_path / "junk.safetensors"))
