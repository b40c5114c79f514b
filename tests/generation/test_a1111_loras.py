"""LoRAs by name for ``<lora:NAME:WEIGHT>`` tags, A1111's hashes stored at registration, importing what A1111
wrote, and the done-when test: a PNG written by a real job on the tiny models reads back, in A1111's reader (written
out in a1111_reference.py), as the settings that made it. Hashes are computed here with hashlib as A1111 does."""

import io
import json
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from PIL import Image as PILImage
from PIL import PngImagePlugin

from generation import images as png
from generation import services
from generation.models import GenerationJob, GenerationTask, Image, Lora, ModelVariant, Prompt, PromptSet
from tests.generation.a1111_reference import a1111_lora_hash, a1111_model_hash, a1111_parse, a1111_txt2img
from tests.generation.helpers import fake_pipelines, make_prompt_set, make_variant  # noqa: F401

pytestmark = pytest.mark.django_db
RE_EXTRA_NET = re.compile(r"<(\w+):([^>]+)>")  # A1111's modules/extra_networks.py re_extra_net


def a1111_prompt_without_tags(text: str) -> str:
    """extra_networks.parse_prompt: the tags are replaced by nothing, the rest of the text left as it is."""
    return RE_EXTRA_NET.sub("", text)


def _register_lora(path, *args):
    out = io.StringIO()
    call_command("register_lora", str(path), *args, stdout=out)
    return out.getvalue()


def _junk(tmp_path, name="junk.safetensors", data=b"\x00" * 64):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- the registry -------------------------------------------------------------------------------------------------


def test_register_lora_stores_the_file_its_format_and_a1111s_hash(tiny_models):
    out = _register_lora(tiny_models.lora_kohya)
    lora = Lora.objects.get()
    assert (lora.name, lora.format, lora.path) == ("lora_kohya", "kohya", str(Path(tiny_models.lora_kohya).resolve()))
    assert lora.short_hash == a1111_lora_hash(tiny_models.lora_kohya)
    assert "<lora:lora_kohya:1>" in out and lora.short_hash in out
    _register_lora(tiny_models.lora_diffusers, "--name", "tiny style (diffusers)")
    folder = Lora.objects.get(name="tiny style (diffusers)")
    weights = Path(tiny_models.lora_diffusers) / "pytorch_lora_weights.safetensors"
    assert (folder.format, folder.short_hash) == ("diffusers", a1111_lora_hash(weights))


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"), ("junk", "LoRA"), ("checkpoint", "no LoRA keys"), ("colon", "may not contain"),
    ("duplicate", "registered already"),
])
def test_register_lora_refuses_bad_input_in_one_line_and_saves_nothing(tiny_models, tmp_path, case, message):
    Lora.objects.create(name="Style", path="/elsewhere.safetensors", short_hash="0" * 12)
    args = {"missing": [tmp_path / "nope.safetensors"], "junk": [_junk(tmp_path)],
            "checkpoint": [tiny_models.eps_file, "--name", "x"],
            "colon": [tiny_models.lora_kohya, "--name", "a:b"],
            "duplicate": [tiny_models.lora_kohya, "--name", "style"]}[case]
    with pytest.raises(CommandError) as info:
        _register_lora(*args)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert list(Lora.objects.values_list("name", flat=True)) == ["Style"]


def test_admin_registers_a_lora_through_the_same_service(client, tiny_models, tmp_path):
    client.force_login(get_user_model().objects.create_user("admin", is_staff=True, is_superuser=True))
    add = reverse("admin:generation_lora_add")
    response = client.post(add, {"name": "bad", "path": str(_junk(tmp_path)), "description": ""})
    assert response.status_code == 200 and "junk.safetensors" in response.content.decode()
    assert not Lora.objects.exists()
    response = client.post(add, {"name": "tiny style", "path": tiny_models.lora_kohya, "description": "test"})
    assert response.status_code == 302
    lora = Lora.objects.get()
    assert (lora.name, lora.format, lora.short_hash) == ("tiny style", "kohya", a1111_lora_hash(tiny_models.lora_kohya))
    change = reverse("admin:generation_lora_change", args=[lora.pk])
    response = client.post(change, {"name": "tiny style", "path": str(tmp_path / "gone.safetensors"), "description": ""})
    assert response.status_code == 200 and "no such file" in response.content.decode()
    lora.refresh_from_db()
    assert lora.path == str(Path(tiny_models.lora_kohya).resolve())


def test_register_model_stores_a1111s_model_hash(tiny_models):
    call_command("register_model", tiny_models.eps_file, "--name", "File", stdout=io.StringIO())
    call_command("register_model", tiny_models.eps_dir, "--name", "Folder", stdout=io.StringIO())
    assert ModelVariant.objects.get(name="File").model_hash == a1111_model_hash(tiny_models.eps_file)
    assert ModelVariant.objects.get(name="Folder").model_hash == ""  # A1111 has no hash for a diffusers folder


# -- prompts with tags -----------------------------------------------------------------------------------------------


def _lora(name="style", path="/loras/style.safetensors", short_hash="0123456789ab"):
    return Lora.objects.create(name=name, path=path, short_hash=short_hash)


@pytest.mark.parametrize("text, negative, message", [
    ("1girl, <lora:unknown:0.8>", "", "unknown LoRA 'unknown'"),
    ("1girl, <lora:style:abc>", "", "is not a number"),
    ("1girl, <lora:style:5>", "", "outside -4–4"),
    ("1girl, <hypernet:x:1>", "", "is not supported"),
    ("1girl, <lora:style:1>", "<lora:style:1>", "LoRA tags only work in the prompt"),
    ("1girl, [cat:dog:0.4]", "", "prompt editing"),
])
def test_a_job_whose_prompts_cannot_be_generated_is_refused_before_anything_is_queued(text, negative, message):
    _lora()
    variant = make_variant("A")
    prompt_set = PromptSet.objects.create(name="Tags")
    Prompt.objects.create(prompt_set=prompt_set, text="1girl, fine")
    Prompt.objects.create(prompt_set=prompt_set, text=text, negative_prompt=negative)
    with pytest.raises(ValidationError) as info:
        services.job_create(variants=[variant], prompt_set=prompt_set, seeds=[1])
    (error,) = info.value.message_dict["prompts"]
    assert message in error and "prompt 2" in error and "\n" not in error
    assert not GenerationJob.objects.exists() and not GenerationTask.objects.exists()
    # pasted prompts are checked the same way, before any is saved
    with pytest.raises(ValidationError):
        services.job_create(variants=[variant], prompt_text=f"1girl\n{text}", seeds=[1], negative_prompt=negative or None)
    assert Prompt.objects.count() == 2 and not GenerationJob.objects.exists()


def test_the_job_form_shows_an_unknown_lora_to_the_admin(client):
    client.force_login(get_user_model().objects.create_user("admin", is_staff=True))
    variant = make_variant("A")
    response = client.post(reverse("generation:jobs"), {"variants": [variant.pk], "prompt_text": "1girl <lora:nope:1>",
                                                        "seeds": "1"})
    assert response.status_code == 400 and "unknown LoRA &#x27;nope&#x27;" in response.content.decode()
    assert not GenerationJob.objects.exists() and not Prompt.objects.exists()


def test_prompt_loras_are_applied_at_their_weights_one_pipeline_per_lora_set(fake_pipelines,
                                                                             django_capture_on_commit_callbacks):
    style, eyes = _lora(), _lora("eyes detail", "/loras/eyes.safetensors", "ba9876543210")
    variant = make_variant("A")
    prompt_set = PromptSet.objects.create(name="LoRA set")
    texts = ["1girl, <lora:style:0.8>, smile", "1boy, <lora:style:0.8>", "1girl, <lora:eyes detail:0.5:1.2>, <lora:style:1>",
             "1girl, plain"]
    for text in texts:
        Prompt.objects.create(prompt_set=prompt_set, text=text)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(variants=[variant], prompt_set=prompt_set, seeds=[1])
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.DONE, list(job.tasks.values_list("error", flat=True))
    # the encoders see the text as A1111 leaves it; each LoRA set is its own pipeline, loaded once
    assert sorted(r.prompt for r in fake_pipelines.requests) == sorted(a1111_prompt_without_tags(t) for t in texts)
    loras = {tuple((lora.path, lora.weight, lora.unet_weight) for lora in spec.loras) for spec in fake_pipelines.specs}
    assert loras == {((style.path, 0.8, 0.8),), ((eyes.path, 0.5, 1.2), (style.path, 1.0, 1.0)), ()}
    assert len(fake_pipelines.loads) == 3 and set(fake_pipelines.loads.values()) == {1}
    # the stored record keeps the prompt as written and lists the files it named
    records = {i.prompt.text: a1111_txt2img(a1111_parse(png.png_text_chunks(i.file.read())["parameters"]))
               for i in Image.objects.select_related("prompt")}
    assert {text: (r["prompt"], r["lora_hashes"]) for text, r in records.items()} == {
        texts[0]: (texts[0], {"style": style.short_hash}), texts[1]: (texts[1], {"style": style.short_hash}),
        texts[2]: (texts[2], {"eyes detail": eyes.short_hash, "style": style.short_hash}), texts[3]: (texts[3], {})}


def test_a_lora_removed_after_the_job_fails_its_images_only(fake_pipelines, django_capture_on_commit_callbacks):
    lora = _lora()
    variant = make_variant("A")
    prompt_set = PromptSet.objects.create(name="S")
    Prompt.objects.create(prompt_set=prompt_set, text="1girl, <lora:style:1>")
    Prompt.objects.create(prompt_set=prompt_set, text="1girl")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = services.job_create(variants=[variant], prompt_set=prompt_set, seeds=[1])
    lora.delete()
    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()
    statuses = dict(job.tasks.values_list("prompt__text", "status"))
    assert statuses == {"1girl, <lora:style:1>": "failed", "1girl": "done"}
    error = job.tasks.get(status="failed").error
    assert "unknown LoRA 'style'" in error and "\n" not in error


# -- importing what A1111 wrote ----------------------------------------------------------------------------------


def _png(size, parameters):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", parameters)
    buffer = io.BytesIO()
    PILImage.new("RGB", size, (1, 2, 3)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


HIRES_RECORD = ("1girl, <lora:style:0.7>\nNegative prompt: lowres\nSteps: 20, Sampler: DPM++ 2M SDE, Schedule type: "
                "Karras, CFG scale: 5, Seed: 9, Size: 256x320, Model hash: 0123456789, Model: ill, Denoising strength: "
                "0.4, Clip skip: 2, RNG: CPU, Hires upscale: 1.5, Hires steps: 8, Hires upscaler: Latent (bicubic), "
                "Rescale CFG: 0.5, Lora hashes: \"style: 0123456789ab\", Version: v1.10.1")


def test_import_reads_schedule_type_and_hires_and_keeps_a1111s_own_record():
    variant = make_variant("Elsewhere", source_type="none", source_path="")
    image, created = services.image_import(variant=variant, data=_png((384, 480), HIRES_RECORD))
    assert created
    assert (image.sampler, image.schedule_type, image.steps, image.clip_skip, image.width, image.height) == (
        "DPM++ 2M SDE", "Karras", 20, 2, 256, 320)
    assert (image.enable_hr, image.hr_scale, image.hr_second_pass_steps, image.denoising_strength, image.hr_upscaler,
            image.output_size) == (True, 1.5, 8, 0.4, "Latent (bicubic)", (384, 480))
    assert png.png_text_chunks(image.file.read())["parameters"] == HIRES_RECORD
    assert services.image_import(variant=variant, data=_png((384, 480), HIRES_RECORD)) == (image, False)


@pytest.mark.parametrize("size, text, message", [
    ((256, 320), HIRES_RECORD, "upscaled ×1.5 to 384×480 but the image is 256×320"),
    ((512, 512), HIRES_RECORD.replace("Hires upscale: 1.5", "Hires resize: 512x512"), "Hires resize: 512x512"),
    ((384, 480), HIRES_RECORD.replace("0123456789", "9999999999", 1), "is it the right model?"),
])
def test_import_refuses_what_it_cannot_store_truthfully_in_one_line(size, text, message):
    variant = make_variant("Known", model_hash="0123456789")
    with pytest.raises(ValidationError) as info:
        services.image_import(variant=variant, data=_png(size, text))
    assert message in info.value.messages[0] and "\n" not in info.value.messages[0]
    assert not Image.objects.exists() and not Prompt.objects.exists()


def test_import_of_a_comfyui_graph_maps_clip_set_last_layer_to_clip_skip():
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 12, "cfg": 4.0, "sampler_name": "euler",
                                                       "scheduler": "sgm_uniform", "positive": ["6", 0],
                                                       "negative": ["7", 0], "latent_image": ["5", 0]}},
             "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "1girl", "clip": ["10", 0]}},
             "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["10", 0]}},
             "10": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -3, "clip": ["4", 1]}}}
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(graph))
    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 64)).save(buffer, format="PNG", pnginfo=info)
    image, _ = services.image_import(variant=make_variant("Comfy"), data=buffer.getvalue())
    assert (image.sampler, image.schedule_type, image.clip_skip) == ("Euler", "SGM Uniform", 3)
    read = a1111_txt2img(a1111_parse(png.png_text_chunks(image.file.read())["parameters"]))
    assert (read["sampler_name"], read["scheduler"], read["CLIP_stop_at_last_layers"]) == ("Euler", "SGM Uniform", 3)


# -- done when: a real job's PNG reads back in A1111 as the settings that made it ----------------------------------


@pytest.fixture
def fresh_cache():
    from generation.pipelines import PipelineCache, set_pipeline_cache

    cache = PipelineCache(max_entries=2)
    previous = set_pipeline_cache(cache)
    yield cache
    set_pipeline_cache(previous)


def test_a_png_of_a_real_job_reads_back_in_a1111_as_the_settings_that_made_it(tiny_models, fresh_cache, monkeypatch,
                                                                              django_capture_on_commit_callbacks):
    monkeypatch.setattr(services.jobs, "_job_finished_hook", lambda job_id: None)
    call_command("register_model", tiny_models.eps_file, "--name", "Tiny eps, v1", stdout=io.StringIO())
    _register_lora(tiny_models.lora_kohya, "--name", "tiny style")
    variant = ModelVariant.objects.get()
    prompt = "masterpiece, 1girl, <lora:tiny style:0.8>, (smile:1.2)\nBREAK\nartist"
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(variants=[variant], prompt_text=prompt.replace("\n", " "), seeds=[123456789],
                                  negative_prompt="worst quality, lowres", sampler="DPM++ 2M SDE",
                                  schedule_type="Karras", steps=3, cfg_scale=5.5, width=256, height=256, clip_skip=2,
                                  enable_hr=True, hr_scale=1.25, hr_second_pass_steps=1, denoising_strength=0.5,
                                  hr_upscaler="Latent (nearest-exact)")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.DONE, list(job.tasks.values_list("error", flat=True))
    image = Image.objects.get()
    data = image.file.read()
    picture = PILImage.open(io.BytesIO(data))
    assert picture.size == (320, 320)  # A1111's hires size: int(256 * 1.25), a multiple of 8
    read = a1111_parse(picture.text["parameters"])
    assert a1111_txt2img(read) == {
        "prompt": prompt.replace("\n", " "), "negative_prompt": "worst quality, lowres", "steps": 3,
        "sampler_name": "DPM++ 2M SDE", "scheduler": "Karras", "cfg_scale": 5.5, "seed": 123456789, "width": 256,
        "height": 256, "CLIP_stop_at_last_layers": 2, "enable_hr": True, "hr_scale": 1.25, "hr_second_pass_steps": 1,
        "denoising_strength": 0.5, "hr_upscaler": "Latent (nearest-exact)",
        "sd_model_checkpoint": a1111_model_hash(tiny_models.eps_file), "model_name": "Tiny eps, v1",
        "lora_hashes": {"tiny style": a1111_lora_hash(tiny_models.lora_kohya)}, "rng": "CPU"}
    assert "Version" in read and "Noise Schedule" not in read and "Rescale CFG" not in read
    # the LoRA was fused at its weight for the text encoders and the UNet, in a pipeline of its own
    ((spec, _device),) = fresh_cache.keys()
    assert [(lora.path, lora.weight, lora.unet_weight) for lora in spec.loras] == [
        (str(Path(tiny_models.lora_kohya).resolve()), 0.8, 0.8)]
