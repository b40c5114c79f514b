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
    """A LoRA fused into a variant: ``weight`` for the text encoders and the UNet (A1111's ``<lora:name:weight>``),
    or ``weight`` for the text encoders and ``unet_weight`` for the UNet (``<lora:name:te:unet>``)."""

    path: str
    weight: float = 1.0
    unet_weight: float | None = None


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
    """One image to generate, in A1111's terms (names as in A1111's txt2img API where they exist).

    ``sampler`` and ``schedule_type`` are A1111 >= 1.6's separate choices ("Automatic" = the sampler's default);
    old combined names ("DPM++ 2M Karras") work too. ``clip_skip`` follows A1111/Forge on SDXL: 1 and 2 both mean
    the penultimate layer of both text encoders, 3 one layer further back. The prompt must not contain
    ``<lora:...>`` tags: resolve them with ``prompt_syntax.parse_lora_tags`` and put the LoRAs in the VariantSpec.

    Hires fix (``enable_hr``): upscale by ``hr_scale`` with ``hr_upscaler`` and run image-to-image for
    ``hr_second_pass_steps`` (0 = ``steps``) at ``denoising_strength``, with A1111's step arithmetic (hires.py).
    """

    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    sampler: str = "Euler a"
    steps: int = 28
    cfg_scale: float = 6.0
    width: int = 1024
    height: int = 1024
    clip_skip: int = 1
    guidance_rescale: float = 0.0
    schedule_type: str = "Automatic"
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_second_pass_steps: int = 0
    denoising_strength: float = 0.7
    hr_upscaler: str = "Latent"

    def output_size(self) -> tuple[int, int]:
        """(width, height) of the final image: the hires size when the hires pass is on."""
        if not self.enable_hr:
            return self.width, self.height
        from .hires import hires_size

        return hires_size(self.width, self.hr_scale), hires_size(self.height, self.hr_scale)


@dataclass(frozen=True)
class CheckpointInfo:
    source_type: str  # "single_file" | "diffusers"
    prediction_type: str  # "eps" | "v"
    has_ztsnr: bool
    notes: tuple[str, ...] = field(default_factory=tuple)
