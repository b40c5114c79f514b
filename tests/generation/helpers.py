"""Fixtures and factories for the generation tests (the pipeline engineer owns conftest.py).

``FakePipelines`` stands in for ``generation.pipelines`` where a test is about the queue, claims, storage or
pages rather than diffusers: it makes a solid-colour image per request (the seed picks the colour), counts
loads like the real pipeline cache does, and can be told to fail a load, run out of memory or fail a batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image as PILImage

from generation.models import ModelVariant, Prompt, PromptSet
from generation.sampling import SamplerSettings
from generation.services import worker


class FakeGenerationError(Exception):
    pass


class FakeOutOfMemory(FakeGenerationError):
    pass


class FakeCheckpointError(Exception):
    pass


@dataclass
class FakePipelines:
    loads: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, int, int]] = field(default_factory=list)  # (variant name, requests, batch size)
    images_made: int = 0
    fail_load: set[str] = field(default_factory=set)
    oom_above_batch: int | None = None
    fail_prompt: str | None = None
    cached: list[str] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)  # every request generated, in order
    specs: list[Any] = field(default_factory=list)  # the spec of each generate call
    before_generate: Any = None
    device: str = "cpu"  # "cuda" makes the worker encode one batch while the next one generates

    GenerationError = FakeGenerationError
    OutOfMemory = FakeOutOfMemory
    CheckpointError = FakeCheckpointError

    @staticmethod
    def VariantSpec(**kwargs):
        return SimpleNamespace(**kwargs)

    @staticmethod
    def LoraSpec(**kwargs):
        return SimpleNamespace(**kwargs)

    @staticmethod
    def GenerationRequest(**kwargs):
        return SimpleNamespace(**kwargs)

    @staticmethod
    def with_prompt_loras(spec, loras):  # as the pipelines': the LoRAs on top, a key that says which
        loras = tuple(loras)
        names = ",".join(f"{lora.path}:{lora.weight}:{lora.unet_weight}" for lora in loras)
        return SimpleNamespace(**{**vars(spec), "key": f"{spec.key}+loras[{names}]", "loras": spec.loras + loras})

    def inspect_checkpoint(self, path):
        raise FakeCheckpointError("fake pipelines do not inspect checkpoints")

    def resolve_device(self, device=None):
        return device or self.device

    def pipeline_cache(self):
        return self

    def set_pipeline_cache(self, cache):  # the worker installs its cache; the stand-in stays the cache
        return self

    def get(self, spec, device):  # the pipeline cache's get: loads once per key
        if spec.key in self.fail_load:
            raise FakeGenerationError(f"cannot load {spec.source_path}: truncated file")
        if spec.key not in self.cached:
            self.loads[spec.key] = self.loads.get(spec.key, 0) + 1
            self.cached.append(spec.key)
        return self

    def generate(self, spec, requests, *, batch_size=4, device=None):
        self.get(spec, self.resolve_device(device))
        self.calls.append((spec.key, len(requests), batch_size))
        self.requests.extend(requests)
        self.specs.append(spec)
        if self.before_generate is not None:
            self.before_generate(spec, requests)
        if self.oom_above_batch is not None and min(batch_size, len(requests)) > self.oom_above_batch:
            raise FakeOutOfMemory(f"CUDA out of memory at batch {batch_size}")
        if self.fail_prompt and any(self.fail_prompt in r.prompt for r in requests):
            raise FakeGenerationError("NaN latents")
        out = []
        for r in requests:
            colour = (r.seed * 37 % 256, r.seed * 91 % 256, len(r.prompt) * 13 % 256)
            size = (r.width, r.height)
            if getattr(r, "enable_hr", False):  # A1111's hires size: int(side * scale), down to a multiple of 8
                size = tuple(int(side * r.hr_scale) // 8 * 8 for side in size)
            out.append(PILImage.new("RGB", size, colour))
            self.images_made += 1
        return out


@pytest.fixture
def fake_pipelines(monkeypatch) -> FakePipelines:
    fake = FakePipelines()
    monkeypatch.setattr(worker, "_pipelines", lambda: fake)
    return fake


def make_variant(name: str, **kwargs) -> ModelVariant:
    values = {"source_type": ModelVariant.SourceType.SINGLE_FILE, "source_path": f"/models/{name}.safetensors",
              "width": 256, "height": 256, "steps": 2, "sampler": "Euler a", "cfg_scale": 5.0}
    values.update(kwargs)
    return ModelVariant.objects.create(name=name, **values)


def sampler_settings(*, seed: int, steps: int, cfg_scale: float, width: int, height: int, sampler: str = "Euler a",
                     clip_skip: int = 1, negative_prompt: str = "") -> SamplerSettings:
    return SamplerSettings(seed=seed, sampler=sampler, steps=steps, cfg_scale=cfg_scale, width=width, height=height,
                           clip_skip=clip_skip, negative_prompt=negative_prompt)


def make_prompt_set(name: str = "Set", n: int = 2) -> PromptSet:
    prompt_set = PromptSet.objects.create(name=name)
    for i in range(n):
        Prompt.objects.create(prompt_set=prompt_set, text=f"1girl, solo, prompt {i}", negative_prompt="worst quality")
    return prompt_set
