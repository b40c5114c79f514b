"""import_images: A1111 and ComfyUI PNGs become images of a model; bad files are reported and skipped."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image as PILImage
from PIL import PngImagePlugin

from generation import images as png
from generation.models import Image, ModelVariant, Prompt
from tests.generation.helpers import make_variant
from tests.generation.test_images import comfyui_graph

pytestmark = pytest.mark.django_db


def _png(path, size, **chunks):
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    PILImage.new("RGB", size, (10, 20, 30)).save(path, format="PNG", pnginfo=info)


def _run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_images", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_reads_a1111_and_comfyui_and_skips_bad_files(tmp_path, settings):
    variant = make_variant("Community model")
    fixed = Prompt.objects.create(text="1girl, hatsune miku", negative_prompt="worst quality")
    _png(tmp_path / "a1111.png", (64, 48), parameters=(
        "1girl, hatsune miku\nNegative prompt: worst quality\n"
        "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 5.5, Seed: 42, Size: 64x48, Model: x"))
    graph = comfyui_graph(seed=7)
    graph["6"]["inputs"]["text"] = "1boy, solo, armor"
    _png(tmp_path / "comfy.png", (64, 48), prompt=json.dumps(graph), workflow="{}")
    _png(tmp_path / "no-metadata.png", (64, 48))
    _png(tmp_path / "wrong-size.png", (32, 32), parameters="x\nSteps: 2, Sampler: Euler, CFG scale: 5, Seed: 1, Size: 64x48")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "notes.txt").write_text("ignored")
    out, err = _run(str(tmp_path), "--model", "Community model")
    assert "imported 2, already there 0, skipped 3 (of 5 PNG files)" in out
    assert {line.split(":")[0] for line in err.strip().splitlines()} == {
        "skipped broken.png", "skipped no-metadata.png", "skipped wrong-size.png"}
    a1111 = Image.objects.get(seed=42)
    assert a1111.prompt == fixed  # joined the identical fixed prompt, so it can meet other models' images
    # DPM++ 2M with Karras is A1111 >= 1.6's DPM++ 2M on its Automatic schedule: stored as that pair
    assert (a1111.sampler, a1111.schedule_type, a1111.steps, a1111.cfg_scale, a1111.width, a1111.height,
            a1111.negative_prompt) == ("DPM++ 2M", "Automatic", 28, 5.5, 64, 48, "worst quality")
    comfy = Image.objects.get(seed=7)
    # ComfyUI's dpmpp_2m + karras is the same pair; CLIPSetLastLayer -2 is A1111's clip skip 2
    assert (comfy.sampler, comfy.schedule_type, comfy.steps, comfy.clip_skip) == ("DPM++ 2M", "Automatic", 25, 2)
    assert (comfy.prompt.text, comfy.prompt.source) == ("1boy, solo, armor", "imported")
    assert {i.variant for i in Image.objects.all()} == {variant}
    # the stored originals carry A1111's record (an A1111 PNG its own, word for word), the voter copies nothing
    assert png.png_text_chunks(a1111.file.read())["parameters"] == (
        "1girl, hatsune miku\nNegative prompt: worst quality\n"
        "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 5.5, Seed: 42, Size: 64x48, Model: x")
    assert "Seed: 7" in png.png_text_chunks(comfy.file.read())["parameters"]
    assert png.png_text_chunks(comfy.voter_file.read()) == {}
    # nothing half-imported: prompts only for the imported files, and importing again adds nothing
    assert Prompt.objects.count() == 2
    out, _ = _run(str(tmp_path), "--model", "Community model")
    assert "imported 0, already there 2, skipped 3" in out and Image.objects.count() == 2


def test_import_needs_a_known_model_unless_asked_to_create_it(tmp_path):
    _png(tmp_path / "a.png", (64, 48), parameters="1girl\nSteps: 2, Sampler: Euler, CFG scale: 5, Seed: 1, Size: 64x48")
    with pytest.raises(CommandError, match="no model named"):
        _run(str(tmp_path), "--model", "Elsewhere")
    with pytest.raises(CommandError, match="no such folder"):
        _run(str(tmp_path / "missing"), "--model", "Elsewhere")
    out, _ = _run(str(tmp_path), "--model", "Elsewhere", "--create", "--prompt-set", "Imported set")
    variant = ModelVariant.objects.get(name="Elsewhere")
    assert variant.source_type == "none" and "imported 1" in out
    assert Image.objects.get().prompt.prompt_set.name == "Imported set"
