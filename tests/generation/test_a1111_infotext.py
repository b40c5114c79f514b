"""The PNG ``parameters`` record read back by A1111's own logic, written out here from stable-diffusion-webui
(modules/infotext_utils.py ``parse_generation_parameters`` and ``unquote``, modules/sd_samplers.py
``get_sampler_and_scheduler``, the sampler and scheduler tables of sd_samplers_kdiffusion.py / sd_schedulers.py),
and the short hashes computed here with hashlib as A1111's hashes.py does."""

import hashlib
import io
import json
import struct

import pytest
from PIL import Image as PILImage

from generation import images as png
from generation.pipelines import (
    SAMPLERS,
    GenerationRequest,
    lora_short_hash,
    model_short_hash,
    parse_lora_tags,
    resolve_sampler,
)

# A1111's reader, written out: tests/generation/a1111_reference.py (shared with the Django-side tests)
from tests.generation.a1111_reference import a1111_parse, a1111_sampler_and_scheduler  # noqa: E402


# -- the record reads back as what was done ---------------------------------------------------------------------


CASES = [
    dict(sampler="Euler a", schedule_type="Automatic"),
    dict(sampler="DPM++ 2M", schedule_type="Automatic"),
    dict(sampler="DPM++ 2M Karras", schedule_type="Automatic"),
    dict(sampler="DPM++ 2M", schedule_type="Exponential"),
    dict(sampler="DPM++ 2M SDE", schedule_type="Karras"),
    dict(sampler="DPM++ SDE", schedule_type="SGM Uniform"),
    dict(sampler="Euler", schedule_type="Beta"),
    dict(sampler="DPM++ 3M SDE", schedule_type="Automatic"),
    dict(sampler="UniPC", schedule_type="Automatic"),
    dict(sampler="LCM", schedule_type="Karras"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['sampler']}+{c['schedule_type']}")
def test_sampler_and_schedule_type_read_back_in_a1111_as_what_ran(case):
    text = png.a1111_parameters(prompt="1girl", negative_prompt="", steps=20, cfg_scale=5, seed=1, width=832,
                                height=1216, model="m", **case)
    read = a1111_parse(text)
    assert a1111_sampler_and_scheduler(read["Sampler"], read["Schedule type"]) == resolve_sampler(**case)


def test_every_setting_reads_back_in_a1111():
    text = png.a1111_parameters(
        prompt="masterpiece, 1girl, <lora:style one:0.8>, (smile:1.2)\nBREAK\nartist", negative_prompt="worst quality, lowres",
        steps=28, sampler="Euler a", cfg_scale=4.5, seed=987654321, width=832, height=1216,
        model="Illustrious-XL v1.0, vpred: test", model_hash="0123456789", clip_skip=2,
        lora_hashes={"style one": "abcdef012345", "char:2,x": "00ff00ff00ff"}, guidance_rescale=0.7, enable_hr=True,
        hr_scale=1.5, hr_second_pass_steps=14, denoising_strength=0.45, hr_upscaler="Latent (bicubic antialiased)",
        zero_terminal_snr=True)
    read = a1111_parse(text)
    assert read["Prompt"] == "masterpiece, 1girl, <lora:style one:0.8>, (smile:1.2)\nBREAK\nartist"
    assert read["Negative prompt"] == "worst quality, lowres"
    assert (read["Steps"], read["Sampler"], read["Schedule type"], read["CFG scale"], read["Seed"]) == (
        "28", "Euler a", "Automatic", "4.5", "987654321")
    assert (read["Size-1"], read["Size-2"]) == ("832", "1216")  # the first pass; the hires size follows from it
    assert read["Model"] == "Illustrious-XL v1.0, vpred: test"  # quoted as A1111 quotes values with , or :
    assert read["Model hash"] == "0123456789"
    assert read["RNG"] == "CPU" and read["Clip skip"] == "2"
    assert (read["Denoising strength"], read["Hires upscale"], read["Hires steps"], read["Hires upscaler"]) == (
        "0.45", "1.5", "14", "Latent (bicubic antialiased)")
    assert read["Lora hashes"] == "style one: abcdef012345, char2x: 00ff00ff00ff"  # A1111 drops : and , from names
    assert read["Rescale CFG"] == "0.7" and read["Noise Schedule"] == "Zero Terminal SNR"
    assert read["Version"] == "arena"
    # and our reader gets the same settings back
    ours = png.parse_a1111_parameters(text)
    assert (ours.sampler_name, ours.schedule_type, ours.steps, ours.cfg_scale, ours.seed, ours.width, ours.height) == (
        "Euler a", "Automatic", 28, 4.5, 987654321, 832, 1216)
    assert (ours.model, ours.model_hash, ours.clip_skip, ours.rng, ours.guidance_rescale) == (
        "Illustrious-XL v1.0, vpred: test", "0123456789", 2, "CPU", 0.7)
    assert (ours.enable_hr, ours.hr_scale, ours.hr_second_pass_steps, ours.denoising_strength, ours.hr_upscaler) == (
        True, 1.5, 14, 0.45, "Latent (bicubic antialiased)")
    assert ours.lora_hashes == {"style one": "abcdef012345", "char2x": "00ff00ff00ff"} and ours.version == "arena"


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_a_png_of_a_request_parses_in_a1111_to_the_settings_that_made_it(sampler):
    schedule = "Automatic" if SAMPLERS[sampler].family in ("ddim", "unipc") else "Karras"
    req = GenerationRequest("1girl, solo", negative_prompt="lowres", seed=42, sampler=sampler, schedule_type=schedule,
                            steps=24, cfg_scale=6.5, width=1024, height=1024, clip_skip=2)
    image = PILImage.new("RGB", (8, 8), (1, 2, 3))
    data = png.png_with_parameters(image, png.a1111_parameters_for_request(req, model="illustrious_v2"))
    read = a1111_parse(PILImage.open(io.BytesIO(data)).text["parameters"])
    assert a1111_sampler_and_scheduler(read["Sampler"], read["Schedule type"]) == resolve_sampler(sampler, schedule)
    assert (read["Prompt"], read["Negative prompt"], read["Seed"], read["Steps"], read["CFG scale"]) == (
        "1girl, solo", "lowres", "42", "24", "6.5")
    assert (read["Size-1"], read["Size-2"], read["Clip skip"], read["RNG"], read["Model"]) == ("1024", "1024", "2", "CPU",
                                                                                              "illustrious_v2")
    assert "Denoising strength" not in read and "Hires upscale" not in read


def test_old_combined_names_and_comfyui_schedulers_read_as_canonical_pairs():
    old = png.parse_a1111_parameters("x\nSteps: 20, Sampler: DPM++ 2M SDE Karras, CFG scale: 5, Seed: 1, Size: 64x64")
    assert (old.sampler_name, old.schedule_type, old.rng) == ("DPM++ 2M SDE", "Karras", "GPU")
    ddim = png.parse_a1111_parameters("x\nSteps: 20, Sampler: DDIM, Schedule type: Karras, CFG scale: 5, Seed: 1")
    assert (ddim.sampler_name, ddim.schedule_type) == ("DDIM", "Automatic")  # A1111's DDIM ignores it
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 5, "sampler_name": "dpmpp_2m",
                                                       "scheduler": "normal", "positive": ["6", 0], "negative": ["6", 0],
                                                       "latent_image": ["5", 0]}},
             "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "1girl"}}}
    comfy = png.parse_comfyui_prompt(json.dumps(graph))
    assert (comfy.sampler_name, comfy.schedule_type) == ("DPM++ 2M", "Uniform")  # ComfyUI's normal is not Karras


# -- hashes --------------------------------------------------------------------------------------------------------


def test_model_hash_is_the_first_10_hex_digits_of_the_files_sha256(tiny_models):
    with open(tiny_models.eps_file, "rb") as fh:
        expected = hashlib.sha256(fh.read()).hexdigest()[:10]
    assert model_short_hash(tiny_models.eps_file) == expected
    assert model_short_hash(tiny_models.eps_dir) is None


def _safetensors(path, metadata):
    header = json.dumps({"__metadata__": metadata, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<2f", 1.0, 2.0))


def test_lora_hash_is_kohyas_addnet_hash_or_its_own_sshs_hash(tmp_path, tiny_models):
    plain, tagged = tmp_path / "plain.safetensors", tmp_path / "tagged.safetensors"
    _safetensors(plain, {"ss_output_name": "x"})
    _safetensors(tagged, {"sshs_model_hash": "feedbeefcafe0123456789"})
    assert lora_short_hash(plain) == hashlib.sha256(struct.pack("<2f", 1.0, 2.0)).hexdigest()[:12]
    assert lora_short_hash(tagged) == "feedbeefcafe"
    # a diffusers LoRA folder is hashed by its weights file, the same bytes as the kohya copy would be hashed by
    with open(tiny_models.lora_kohya, "rb") as fh:
        head = fh.read(8)
        fh.seek(8 + struct.unpack("<Q", head)[0])
        assert lora_short_hash(tiny_models.lora_kohya) == hashlib.sha256(fh.read()).hexdigest()[:12]


def test_lora_hashes_of_a_prompt_go_in_the_record_under_the_names_written():
    prompt = "1girl, <lora:style:0.8>, <lora:eyes:1>"
    tags = parse_lora_tags(prompt)
    hashes = {lora.name: f"{i:012x}" for i, lora in enumerate(tags.loras)}
    read = a1111_parse(png.a1111_parameters(prompt=prompt, negative_prompt="", steps=20, sampler="Euler a", cfg_scale=5,
                                            seed=1, width=64, height=64, model="m", lora_hashes=hashes))
    assert read["Prompt"] == prompt and read["Lora hashes"] == "style: 000000000000, eyes: 000000000001"
