"""PNG handling: A1111 parameters written and read back, ComfyUI graphs read, voter copies bare."""

import io
import json

import pytest
from PIL import Image as PILImage
from PIL import PngImagePlugin

from generation import images as png


def _noise(size=(64, 48)):
    return PILImage.frombytes("RGB", size, bytes((i * 7) % 256 for i in range(size[0] * size[1] * 3)))


def test_a1111_parameters_round_trip():
    text = png.a1111_parameters(prompt="1girl, (smile:1.2)\nBREAK\nartist tag", negative_prompt="worst quality, low quality",
                                steps=28, sampler="Euler a", cfg_scale=7.5, seed=1234, width=832, height=1216,
                                model="Illustrious XL v1.0", clip_skip=2)
    assert text.splitlines()[-1] == ("Steps: 28, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.5, Seed: 1234, "
                                     "Size: 832x1216, Model: Illustrious XL v1.0, Clip skip: 2, RNG: CPU, Version: arena")
    record = png.parse_a1111_parameters(text)
    assert record.prompt == "1girl, (smile:1.2)\nBREAK\nartist tag"
    assert record.negative_prompt == "worst quality, low quality"
    assert (record.steps, record.sampler, record.cfg_scale, record.seed) == (28, "Euler a", 7.5, 1234)
    assert (record.width, record.height, record.clip_skip, record.model) == (832, 1216, 2, "Illustrious XL v1.0")


def test_a1111_parser_reads_quoted_values_and_schedule_type():
    text = ('masterpiece\nNegative prompt: lowres\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 5, '
            'Seed: 7, Size: 1024x1024, Model hash: abc, Lora hashes: "a: 1, b: 2", Version: v1.10')
    record = png.parse_a1111_parameters(text)
    assert record.sampler == "DPM++ 2M Karras"
    assert record.extra["Lora hashes"] == "a: 1, b: 2"
    assert (record.width, record.height) == (1024, 1024)


def test_a1111_parser_refuses_text_without_settings():
    with pytest.raises(png.MetadataError):
        png.parse_a1111_parameters("just a caption")


def test_original_carries_parameters_and_voter_copy_carries_nothing():
    source = _noise()
    source.info["comment"] = "secret"
    original = png.png_with_parameters(source, "a prompt\nSteps: 2, Sampler: Euler, CFG scale: 5, Seed: 1, Size: 64x48")
    assert png.png_text_chunks(original) == {"parameters": "a prompt\nSteps: 2, Sampler: Euler, CFG scale: 5, Seed: 1, Size: 64x48"}
    # a source with text chunks and EXIF: the voter copy has none of it, only the pixels
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "leak")
    exif = PILImage.Exif()
    exif[0x010E] = "leak"
    buffer = io.BytesIO()
    source.save(buffer, format="PNG", pnginfo=info, exif=exif.tobytes())
    loaded = PILImage.open(io.BytesIO(buffer.getvalue()))
    voter = png.png_without_metadata(loaded)
    opened = PILImage.open(io.BytesIO(voter))
    assert png.png_text_chunks(voter) == {}
    assert "exif" not in opened.info and not opened.getexif()
    assert b"tEXt" not in voter and b"iTXt" not in voter and b"zTXt" not in voter and b"eXIf" not in voter
    assert opened.convert("RGB").tobytes() == source.tobytes()


def test_thumbnail_is_small_webp():
    data = png.webp_thumbnail(_noise((1024, 512)))
    thumb = PILImage.open(io.BytesIO(data))
    assert thumb.format == "WEBP" and max(thumb.size) == png.THUMB_MAX_SIDE


def comfyui_graph(seed=42):
    return {
        "3": {"class_type": "KSampler", "inputs": {"seed": seed, "steps": 25, "cfg": 5.5, "sampler_name": "dpmpp_2m",
                                                   "scheduler": "karras", "denoise": 1, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "illustriousXL_v01.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "1girl, hatsune miku", "clip": ["10", 0]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "worst quality", "clip": ["10", 0]}},
        "10": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -2, "clip": ["4", 1]}},
    }


def test_comfyui_prompt_graph_is_read():
    record = png.parse_comfyui_prompt(json.dumps(comfyui_graph()))
    assert record.prompt == "1girl, hatsune miku" and record.negative_prompt == "worst quality"
    assert (record.seed, record.steps, record.cfg_scale, record.sampler) == (42, 25, 5.5, "DPM++ 2M Karras")
    assert (record.width, record.height, record.clip_skip) == (64, 48, 2)
    assert record.model == "illustriousXL_v01.safetensors" and record.source == "comfyui"


def test_comfyui_graph_without_sampler_is_refused():
    with pytest.raises(png.MetadataError):
        png.parse_comfyui_prompt(json.dumps({"1": {"class_type": "SaveImage", "inputs": {}}}))
