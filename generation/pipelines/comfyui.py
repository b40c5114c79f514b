"""ComfyUI's ``prompt`` chunk (the API-format node graph) read as a generation record. Pure Python."""

from __future__ import annotations

import json
from typing import Any

from . import infotext
from .records import GenerationRecord, MetadataError, _float, _int, _legacy_name


# ComfyUI sampler_name / scheduler -> A1111 sampler / schedule type (ComfyUI's "normal" is A1111's Uniform)
_COMFY_SAMPLERS = {
    "euler_ancestral": "Euler a",
    "euler": "Euler",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_sde_gpu": "DPM++ SDE",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
    "dpmpp_2m_sde_heun": "DPM++ 2M SDE Heun",
    "dpmpp_2m_sde_heun_gpu": "DPM++ 2M SDE Heun",
    "dpmpp_3m_sde": "DPM++ 3M SDE",
    "dpmpp_3m_sde_gpu": "DPM++ 3M SDE",
    "ddim": "DDIM",
    "uni_pc": "UniPC",
    "uni_pc_bh2": "UniPC",
    "heun": "Heun",
    "lms": "LMS",
    "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a",
    "lcm": "LCM",
}
_COMFY_SCHEDULERS = {"normal": "Uniform", "karras": "Karras", "exponential": "Exponential", "sgm_uniform": "SGM Uniform",
                     "beta": "Beta", "simple": "Simple", "ddim_uniform": "DDIM", "kl_optimal": "KL Optimal"}
_SAMPLER_CLASSES = {"KSampler", "KSamplerAdvanced", "KSampler (Efficient)", "SamplerCustom"}


def parse_comfyui_prompt(text: str) -> GenerationRecord:
    """Parse ComfyUI's ``prompt`` chunk (the API-format graph) for prompt, seed and settings."""
    try:
        graph = json.loads(text)
    except ValueError as exc:
        raise MetadataError(f"the ComfyUI prompt chunk is not JSON: {exc}") from None
    if not isinstance(graph, dict) or not graph:
        raise MetadataError("the ComfyUI prompt chunk is not a node graph")
    nodes = {str(k): v for k, v in graph.items() if isinstance(v, dict) and "class_type" in v}

    def node(ref: Any) -> dict | None:
        if isinstance(ref, list) and ref:
            return nodes.get(str(ref[0]))
        return None

    def resolve(value: Any, depth: int = 0) -> Any:
        """Follow links ([node_id, output]) to a literal (primitive nodes, text concat ...)."""
        if depth > 20:
            return None
        target = node(value)
        if target is None:
            return value
        inputs = target.get("inputs", {})
        for key in ("text", "value", "string", "seed", "noise_seed", "int", "float", "text_g"):
            if key in inputs:
                return resolve(inputs[key], depth + 1)
        return None

    def text_of(ref: Any, depth: int = 0) -> str:
        target = node(ref)
        if target is None or depth > 20:
            return ""
        inputs = target.get("inputs", {})
        for key in ("text", "text_g", "prompt"):
            if key in inputs:
                value = resolve(inputs[key])
                return value if isinstance(value, str) else ""
        for key in ("conditioning", "conditioning_1", "positive"):  # pass-through conditioning nodes
            if key in inputs:
                return text_of(inputs[key], depth + 1)
        return ""

    def clip_skip_of(ref: Any, depth: int = 0) -> int:
        target = node(ref)
        if target is None or depth > 20:
            return 1
        inputs = target.get("inputs", {})
        if target.get("class_type") == "CLIPSetLastLayer":
            try:
                return max(1, -int(inputs.get("stop_at_clip_layer", -1)))
            except (TypeError, ValueError):
                return 1
        if "clip" in inputs:
            return clip_skip_of(inputs["clip"], depth + 1)
        return 1

    def latent_size(ref: Any, depth: int = 0) -> tuple[int, int]:
        target = node(ref)
        if target is None or depth > 20:
            return 0, 0
        inputs = target.get("inputs", {})
        if "width" in inputs and "height" in inputs:
            width, height = resolve(inputs["width"]), resolve(inputs["height"])
            try:
                return int(width), int(height)
            except (TypeError, ValueError):
                return 0, 0
        for key in ("samples", "latent_image", "latent"):
            if key in inputs:
                return latent_size(inputs[key], depth + 1)
        return 0, 0

    def model_of(ref: Any, depth: int = 0) -> str:
        target = node(ref)
        if target is None or depth > 20:
            return ""
        inputs = target.get("inputs", {})
        if "ckpt_name" in inputs:
            return str(resolve(inputs["ckpt_name"]) or "")
        if "model" in inputs:
            return model_of(inputs["model"], depth + 1)
        return ""

    samplers = [n for _, n in sorted(nodes.items()) if n.get("class_type") in _SAMPLER_CLASSES]
    if not samplers:
        raise MetadataError("the ComfyUI graph has no KSampler node")
    sampler = samplers[0]
    inputs = sampler.get("inputs", {})
    seed = resolve(inputs.get("seed", inputs.get("noise_seed")))
    if seed is None:
        raise MetadataError("the ComfyUI KSampler has no seed")
    prompt = text_of(inputs.get("positive"))
    if not prompt.strip():
        raise MetadataError("the ComfyUI graph has no positive prompt text")
    negative = text_of(inputs.get("negative"))
    positive_node = node(inputs.get("positive")) or {}
    width, height = latent_size(inputs.get("latent_image"))
    name = str(resolve(inputs.get("sampler_name", "euler")))
    scheduler = str(resolve(inputs.get("scheduler", "normal")))
    sampler = _COMFY_SAMPLERS.get(name, name)
    schedule = _COMFY_SCHEDULERS.get(scheduler, scheduler)
    sampler_name, schedule_type = infotext.canonical_pair(sampler, schedule)
    return GenerationRecord(
        prompt=prompt.strip(),
        negative_prompt=negative.strip(),
        seed=_int(seed, "seed"),
        steps=_int(resolve(inputs.get("steps", 20)), "steps"),
        cfg_scale=_float(resolve(inputs.get("cfg", 7.0)), "cfg"),
        sampler=_legacy_name(sampler, schedule),
        sampler_name=sampler_name,
        schedule_type=schedule_type,
        clip_skip=clip_skip_of(positive_node.get("inputs", {}).get("clip")),
        width=width,
        height=height,
        model=model_of(inputs.get("model")),
        source="comfyui",
        rng="GPU",  # ComfyUI draws its initial noise on the CPU, but the record has no A1111 RNG field
    )
