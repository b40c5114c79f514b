"""The worker interface's plain data: what to load, what to generate, and the errors. No torch here."""

from __future__ import annotations

from dataclasses import dataclass, field

SOURCE_TYPES = ("single_file", "diffusers")
PREDICTION_TYPES = ("eps", "v")


class GenerationError(Exception):
    """A clear, one-line reason why generation cannot run (bad settings, missing file, unreadable checkpoint)."""

    def __init__(self, message: str):
        # one line, always: the message is shown on admin pages and in job logs
        super().__init__(" ".join(str(message).split()))


class OutOfMemory(GenerationError):
    """The accelerator ran out of memory; the task may retry with a smaller batch."""


class CheckpointError(GenerationError):
    """A checkpoint path or file is not a usable SDXL checkpoint."""


@dataclass(frozen=True)
class LoraSpec:
    path: str
    weight: float = 1.0


@dataclass(frozen=True)
class VariantSpec:
    key: str  # cache key (e.g. "variant-3")
    source_type: str  # "single_file" | "diffusers"
    source_path: str
    config_path: str = ""  # local diffusers config folder for single files ("" = bundled, inferred from shapes)
    prediction_type: str = "eps"  # "eps" | "v"
    loras: tuple[LoraSpec, ...] = ()


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    sampler: str = "Euler a"
    steps: int = 28
    cfg_scale: float = 6.0
    width: int = 1024
    height: int = 1024
    clip_skip: int = 1  # A1111 convention: 1 = no skip (SDXL's usual penultimate layer), 2 = one layer earlier
    guidance_rescale: float = 0.0
    # optional hires pass (A1111 "Hires. fix"): upscale the image by hires_scale and run image-to-image with
    # strength hires_denoise for hires_steps (0 = the same steps); hires_scale 1.0 = off
    hires_scale: float = 1.0
    hires_steps: int = 0
    hires_denoise: float = 0.5

    def output_size(self) -> tuple[int, int]:
        """(width, height) of the final image: the hires size when the hires pass is on."""
        if self.hires_scale == 1.0:
            return self.width, self.height
        return hires_size(self.width, self.hires_scale), hires_size(self.height, self.hires_scale)


def hires_size(side: int, scale: float) -> int:
    return int(round(side * scale / 8)) * 8


@dataclass(frozen=True)
class CheckpointInfo:
    source_type: str  # "single_file" | "diffusers"
    prediction_type: str  # "eps" | "v"
    has_ztsnr: bool
    notes: tuple[str, ...] = field(default_factory=tuple)
