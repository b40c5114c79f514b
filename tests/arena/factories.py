"""Test data for the arena: models with fixed-prompt images, made directly (the generation app's own tests
cover how images are really made)."""

from __future__ import annotations

import io
import itertools

from django.core.files.base import ContentFile
from PIL import Image as PILImage, PngImagePlugin

from generation.models import Image, ModelVariant, Prompt, PromptSet

_counter = itertools.count()


def png_bytes(color=(120, 30, 200), size=(64, 64), text: dict | None = None) -> bytes:
    img = PILImage.new("RGB", size, color)
    buf = io.BytesIO()
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for k, v in text.items():
            info.add_text(k, v)
    img.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def make_variant(name: str | None = None, **kwargs) -> ModelVariant:
    n = next(_counter)
    return ModelVariant.objects.create(name=name or f"Model {n}", **kwargs)


def make_prompt(text: str = "1girl, solo, masterpiece", source=Prompt.Source.FIXED, prompt_set=None) -> Prompt:
    if prompt_set is None and source == Prompt.Source.FIXED:
        prompt_set, _ = PromptSet.objects.get_or_create(name="test prompts")
    return Prompt.objects.create(text=text, source=source, prompt_set=prompt_set)


def make_image(variant: ModelVariant, prompt: Prompt, *, seed: int = 1, size=(64, 64), settings_key: str | None = None) -> Image:
    n = next(_counter)
    color = ((n * 37) % 256, (n * 91) % 256, (n * 53) % 256)
    params = f"{prompt.text}\nSteps: 20, Sampler: Euler a, CFG scale: 6, Seed: {seed}, Size: {size[0]}x{size[1]}, Model: {variant.name}"
    image = Image(
        variant=variant, prompt=prompt, seed=seed, sampler="Euler a", steps=20, cfg_scale=6.0,
        width=size[0], height=size[1], settings_key=settings_key or f"seed{seed}-{size[0]}x{size[1]}",
    )
    image.file.save("x.png", ContentFile(png_bytes(color, size, {"parameters": params})), save=False)
    image.voter_file.save("x.png", ContentFile(png_bytes(color, size)), save=False)
    image.save()
    return image


def arena_with_images(n_models: int = 4, n_prompts: int = 2, seeds=(1,), size=(64, 64)) -> tuple[list[ModelVariant], list[Prompt]]:
    variants = [make_variant() for _ in range(n_models)]
    prompts = [make_prompt(f"1girl, prompt number {i}, masterpiece") for i in range(n_prompts)]
    for v in variants:
        for p in prompts:
            for s in seeds:
                make_image(v, p, seed=s, size=size)
    return variants, prompts
