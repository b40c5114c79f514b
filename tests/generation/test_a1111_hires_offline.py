"""Hires fix with A1111's step arithmetic (sd_samplers_common.setup_img2img_steps and sample_img2img, written
out), prompt and negative prompt at their own lengths (A1111's default), VAE slicing and tiling, and no hub."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.pipelines import GenerationError, GenerationRequest, VariantSpec, hires_size, hires_steps, validate_request
from generation.pipelines.configs import SCHEDULER_SDXL

pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")]


@pytest.fixture(scope="module")
def loaded(tiny_models):
    from generation.pipelines.loading import load_pipeline

    return load_pipeline(VariantSpec("hires-a1111", "single_file", tiny_models.eps_file), "cpu")


def a1111_second_pass(steps, hr_second_pass_steps, denoising_strength):
    """(schedule length, index of the first sampled sigma, steps sampled), as A1111 runs the hires pass."""
    requested = hr_second_pass_steps or steps  # sample_hr_pass: steps=self.hr_second_pass_steps or self.steps
    total = int(requested / min(denoising_strength, 0.999)) if denoising_strength > 0 else 0  # fix-steps branch
    t_enc = requested - 1
    start = total - t_enc - 1  # sigma_sched = sigmas[steps - t_enc - 1:]
    return total, start, (total + 1) - start - 1


@pytest.mark.parametrize("steps, hr_steps, strength", [(28, 0, 0.5), (28, 14, 0.45), (20, 10, 0.7), (1, 0, 0.5),
                                                       (30, 0, 1.0), (25, 7, 0.3), (12, 3, 0.999)])
def test_hires_runs_exactly_a1111s_second_pass_steps(steps, hr_steps, strength):
    from diffusers import StableDiffusionXLImg2ImgPipeline

    from generation.pipelines import build_scheduler

    total, start, run = a1111_second_pass(steps, hr_steps, strength)
    plan = hires_steps(steps, hr_steps, strength)
    assert (plan.total, plan.start, plan.run) == (total, start, run)
    # and diffusers' image-to-image, given our strength, samples exactly those sigmas of that schedule
    sched = build_scheduler("Euler a", SCHEDULER_SDXL)
    sched.set_timesteps(plan.total)
    holder = type("P", (), {"scheduler": sched})()
    timesteps, n = StableDiffusionXLImg2ImgPipeline.get_timesteps(holder, plan.total, plan.diffusers_strength(), "cpu")
    assert n == run and len(timesteps) == run and sched.begin_index == start
    np.testing.assert_allclose(sched.sigmas[sched.begin_index:].numpy(), sched.a1111_sigmas(total)[start:], rtol=1e-6)


def test_hires_one_step_at_half_denoise_is_valid_and_runs(loaded):
    req = GenerationRequest("1girl", steps=1, width=64, height=64, enable_hr=True, hr_scale=1.5, denoising_strength=0.5)
    validate_request(GenerationRequest("1girl", steps=1, enable_hr=True, hr_scale=1.5, denoising_strength=0.5))
    (image,) = loaded.generate_arrays([req])
    assert image.shape == (96, 96, 3) and np.isfinite(image).all() and image.std() > 1e-3


@pytest.mark.parametrize("upscaler", ["Latent", "Latent (nearest-exact)", "Lanczos"])
def test_hires_upscalers_give_the_hires_size(loaded, upscaler):
    req = GenerationRequest("1girl", steps=2, width=64, height=64, enable_hr=True, hr_scale=1.25,
                            hr_second_pass_steps=1, denoising_strength=0.6, hr_upscaler=upscaler)
    (image,) = loaded.generate_arrays([req])
    assert image.shape == (80, 80, 3) and np.isfinite(image).all()


def test_hires_size_is_a1111s_int_of_side_times_scale_to_a_multiple_of_8():
    assert (hires_size(832, 1.5), hires_size(1216, 1.5)) == (1248, 1824)
    assert hires_size(1024, 1.3) == int(1024 * 1.3) // 8 * 8 == 1328  # A1111: latent of int(1331.2) // 8
    assert GenerationRequest("x", width=832, height=1216, enable_hr=True, hr_scale=1.5).output_size() == (1248, 1824)


def test_hires_settings_are_refused_with_a1111s_names_in_the_message():
    with pytest.raises(GenerationError, match="hires steps must be from 0"):
        validate_request(GenerationRequest("x", enable_hr=True, hr_second_pass_steps=-1))


# -- prompt and negative prompt of different lengths -------------------------------------------------------------


def test_padding_chunks_are_masked_so_the_unet_sees_each_prompt_at_its_own_length(loaded):
    from generation.pipelines import runner

    reqs = [GenerationRequest("a BREAK b", negative_prompt="lowres"), GenerationRequest("c", negative_prompt="")]
    assert runner.cross_attention_mask(loaded, reqs[1:]) is None
    mask = runner.cross_attention_mask(loaded, reqs[:1])
    assert mask.tolist() == [[1.0] * 77 + [0.0] * 77, [1.0] * 154]  # [negative, prompt]
    _, _, neg, neg_pooled = loaded.encoder.encode_pair("a BREAK b", "lowres")
    unpadded, _ = loaded.encoder.encode("lowres")
    unet = loaded.pipe.unet
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    cond = {"text_embeds": neg_pooled, "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])}
    with torch.no_grad():
        alone = unet(x, 500.0, encoder_hidden_states=unpadded, added_cond_kwargs=cond).sample
        with runner.masked_cross_attention(unet, mask[:1]):  # the negative's row
            masked = unet(x, 500.0, encoder_hidden_states=neg, added_cond_kwargs=cond).sample
        padded = unet(x, 500.0, encoder_hidden_states=neg, added_cond_kwargs=cond).sample
    torch.testing.assert_close(masked, alone, rtol=1e-4, atol=1e-5)  # A1111: the negative runs at its 77 tokens
    assert (padded - alone).abs().max() > 1e-4  # without the mask the padding would change it


def test_generation_hands_the_mask_to_every_unet_call(loaded):
    from generation.pipelines import runner

    req = GenerationRequest("a BREAK b", negative_prompt="lowres", steps=2, width=64, height=64, sampler="Euler",
                            enable_hr=True, hr_scale=1.25, hr_second_pass_steps=1)
    mask = runner.cross_attention_mask(loaded, [req])
    calls = []
    hook = loaded.pipe.unet.register_forward_hook(lambda m, a, kw, out: calls.append(kw.get("encoder_attention_mask")),
                                                 with_kwargs=True)
    try:
        (image,) = loaded.generate_arrays([req])
    finally:
        hook.remove()
    assert np.isfinite(image).all()
    assert len(calls) == 3 and all(c is not None and torch.equal(c.cpu(), mask) for c in calls)  # 2 + hires 1
    loaded.generate_arrays([GenerationRequest("c", steps=1, width=64, height=64)])  # and no hook is left behind
    assert not loaded.pipe.unet._forward_pre_hooks


# -- decoding ------------------------------------------------------------------------------------------------------


def test_large_images_decode_one_at_a_time_and_fall_back_to_tiling_when_out_of_memory(loaded, monkeypatch):
    from generation.pipelines import runner

    assert 1248 * 1824 > runner.SLICED_DECODE_PIXELS > 1024 * 1024  # hires 1248x1824 is sliced, 1 MP is not
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    whole = runner.decode(loaded.pipe, latents)
    vae = loaded.pipe.vae
    batches = []
    original = type(vae).decode

    def spy(self, z, *args, **kwargs):
        batches.append((z.shape[0], self.use_tiling))
        if not self.use_tiling and z.shape[0] == 1 and len(batches) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, z, *args, **kwargs)

    monkeypatch.setattr(type(vae), "decode", spy)
    monkeypatch.setattr(runner, "SLICED_DECODE_PIXELS", 32 * 32)
    sliced = runner.decode(loaded.pipe, latents)
    assert batches == [(1, False), (1, True), (1, False)]  # one image at a time; tiling only for the retry
    assert not vae.use_tiling
    np.testing.assert_allclose(sliced, whole, atol=1e-5)


# -- no hub, ever --------------------------------------------------------------------------------------------------


def test_offline_for_good_even_when_the_hub_was_imported_first(tiny_models, tmp_path):
    code = textwrap.dedent(f"""
        import os, socket, sys
        for key in [k for k in os.environ if "OFFLINE" in k or "TELEMETRY" in k]:
            del os.environ[key]
        os.environ["HF_HUB_OFFLINE"] = "0"  # someone asked for online mode
        import huggingface_hub.constants as hub, diffusers.loaders.lora_base as lora_base, transformers  # imported first
        assert hub.HF_HUB_OFFLINE is False and lora_base.HF_HUB_OFFLINE is False
        attempts = []
        def refuse(*args, **kwargs):
            attempts.append(args)
            raise OSError("network access attempted")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        import generation.pipelines as p
        assert hub.HF_HUB_OFFLINE is True and lora_base.HF_HUB_OFFLINE is True, "switches not flipped"
        assert os.environ["HF_HUB_OFFLINE"] == "1" and p.offline.is_offline()
        import torch
        torch.set_num_threads(1)
        req = p.GenerationRequest("1girl BREAK smile", steps=1, width=256, height=256)
        for spec in (p.VariantSpec("s", "single_file", {tiny_models.v_file!r}, prediction_type="v",
                                   loras=(p.LoraSpec({tiny_models.lora_kohya!r}),)),
                     p.VariantSpec("d", "diffusers", {tiny_models.eps_dir!r},
                                   loras=(p.LoraSpec({tiny_models.lora_diffusers!r}, 0.5),))):
            assert p.generate(spec, [req])[0].size == (256, 256)
        assert attempts == [], attempts
        print("ok")
    """)
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if "OFFLINE" not in k}
    env.update(PYTHONPATH=str(root), OMP_NUM_THREADS="1", HF_HOME=str(tmp_path / "hf"))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout[-2000:] + result.stderr[-4000:]
