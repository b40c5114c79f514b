"""A1111's "Hires. fix" arithmetic: the second pass's size, step count and start, and the upscalers offered.

Pure Python. A1111 (modules/processing.py, sd_samplers_common.setup_img2img_steps) upscales to
``int(side * hr_scale)`` (the latent, and so the image, is that rounded down to a multiple of 8), then runs
image-to-image with ``hr_second_pass_steps or steps`` steps: it builds a schedule of
``int(steps / min(denoising_strength, 0.999))`` steps and samples its last ``steps`` of them.
"""

from __future__ import annotations

from dataclasses import dataclass

# A1111's latent upscale modes (shared.latent_upscale_modes): torch interpolate mode and antialias
LATENT_UPSCALERS: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
# image-space upscalers: decode, resize the 8-bit image with PIL, encode again (A1111's "Lanczos" / "Nearest")
IMAGE_UPSCALERS = ("Lanczos", "Nearest")
HR_UPSCALERS = tuple(LATENT_UPSCALERS) + IMAGE_UPSCALERS


def hires_size(side: int, scale: float) -> int:
    """The final side after the hires pass: A1111's ``int(side * hr_scale)``, down to a multiple of 8."""
    return int(side * scale) // 8 * 8


@dataclass(frozen=True)
class HiresSteps:
    total: int  # steps of the schedule the second pass is cut from
    run: int  # steps actually sampled: the last ``run`` of ``total``

    @property
    def start(self) -> int:
        """Index of the schedule's first sigma that is sampled (noise is added at that sigma)."""
        return self.total - self.run

    def diffusers_strength(self) -> float:
        """The ``strength`` for which diffusers' image-to-image (``int(total * strength)`` steps) runs ``run`` steps."""
        return 1.0 if self.run >= self.total else (self.run + 0.5) / self.total


def hires_steps(steps: int, hr_second_pass_steps: int, denoising_strength: float) -> HiresSteps:
    """A1111's second-pass step count: ``run = hr_second_pass_steps or steps``, ``total = int(run / min(d, 0.999))``.

    >>> hires_steps(28, 0, 0.5)
    HiresSteps(total=56, run=28)
    >>> hires_steps(1, 0, 0.5)   # one step, sampled from the middle of a two-step schedule
    HiresSteps(total=2, run=1)
    """
    run = int(hr_second_pass_steps) or int(steps)
    if run < 1:
        raise ValueError("the hires pass needs at least one step")
    if not 0 < denoising_strength <= 1:
        raise ValueError(f"denoising strength must be above 0 and at most 1, got {denoising_strength!r}")
    return HiresSteps(total=int(run / min(float(denoising_strength), 0.999)), run=run)
