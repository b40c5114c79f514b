"""Pre-training of the tiny SDXL-shaped models on procedural captioned pictures (``shapes``), by our own code.

Three stages, all on the CPU, seeded:

1. **VAE** (``train_vae``): the AutoencoderKL's encoder is taught a fixed latent (``latent_target``: per 8x8
   cell the mean colour and the grey spread, standardised so latents x ``scaling_factor``, SDXL's 0.13025, are
   ~N(0, 1) as SDXL's are) and its decoder to draw the picture back from it.
2. **Epsilon UNet** (``train_unet``) with both text encoders: the usual denoising loss on the pictures' latents,
   uniform timesteps on the SDXL schedule, the captions encoded as generation encodes prompts (penultimate
   hidden states of both encoders concatenated, the second one's pooled projection, added time ids
   ``(h, w, 0, 0, h, w)``). 10% of captions are dropped to zeros (what an empty negative prompt is in SDXL) and
   5% to filler tags only, so classifier-free guidance has an unconditional model to push away from. Batches
   alternate between 64 px and 128 px pictures so the model is not tied to one latent size.
3. **v-prediction UNet**: started from the epsilon model's weights, trained on the v target with the zero
   terminal SNR schedule (``rescale_betas_zero_snr``) the v variant samples with.

``pretrain(eps_pipe, v_pipe)`` trains the modules of two StableDiffusionXLPipelines in place and returns a
dict of measurements (losses, seconds) for the manifest.
"""

from __future__ import annotations

import copy
import time

import numpy as np

from . import shapes

# Step counts and sizes; part of the build key through this file's bytes.
VAE_STEPS = 500
VAE_BATCH = 16
VAE_CROP = 32  # the VAE is convolutional: trained on 32 px pictures, used at any size
LR_VAE = 2e-3
EPS_STEPS = 700
V_STEPS = 250
POOL_64 = 2048
POOL_128 = 256
BATCH_64 = 48  # the tiny UNet's CPU step is overhead-bound: a bigger batch costs little more
BATCH_128 = 12
EVERY_128 = 4  # one 128 px batch every this many steps
LR_UNET = 2e-3
LR_TEXT = 1e-3
DROP_ZEROS = 0.10
DROP_FILLER = 0.05
EPS_WEIGHT_CAP = 10.0


def _torch():
    import torch

    return torch


def make_pool(seed: int, count: int, size: int):
    """(specs, images [N, 3, size, size] in -1..1) drawn from ``shapes``."""
    torch = _torch()
    rng = np.random.default_rng(seed)
    specs, images = [], []
    for _ in range(count):
        spec = shapes.random_spec(rng)
        specs.append(spec)
        images.append(shapes.render(spec, size, rng))
    arr = np.stack(images).transpose(0, 3, 1, 2) * 2.0 - 1.0
    return specs, torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def latent_target(x, scaling_factor: float):
    """The latent the VAE is taught, for pictures ``x`` [B, 3, H, W] in -1..1: per 8x8 cell the mean R, G, B and
    the grey level's spread, each standardised (fixed constants measured on ``shapes`` pictures) and divided by
    ``scaling_factor``, so latents x scaling_factor are ~N(0, 1) per channel, as SDXL's are."""
    torch = _torch()
    import torch.nn.functional as F

    mean = F.avg_pool2d(x, 8)
    grey = x.mean(dim=1, keepdim=True)
    spread = (F.avg_pool2d(grey * grey, 8) - F.avg_pool2d(grey, 8) ** 2).clamp_min(0).sqrt()
    z = torch.cat([mean, spread], dim=1)
    centre = torch.tensor(LATENT_CENTRE, dtype=z.dtype)[None, :, None, None]
    scale = torch.tensor(LATENT_SCALE, dtype=z.dtype)[None, :, None, None]
    return (z - centre) / scale / scaling_factor


# measured on make_pool(seed=1, 512, 64): per-channel mean and standard deviation of the cell statistics
LATENT_CENTRE = (-0.04, -0.14, -0.11, 0.05)
LATENT_SCALE = (0.69, 0.59, 0.64, 0.11)


def train_vae(vae, *, seed: int, log) -> dict:
    """Teach the encoder to output ``latent_target`` (its log-variance pinned low: a near-deterministic
    posterior) and the decoder to draw the picture back from it (L1 + MSE, the latent slightly noised so the
    decoder tolerates the diffusion model's errors). Directly supervised halves learn in a fraction of the steps
    a from-scratch autoencoder needs, and the latent space is laid out like a small picture, which the tiny
    UNet learns quickly."""
    torch = _torch()
    sf = float(vae.config.scaling_factor)
    _, images = make_pool(seed, 1024, VAE_CROP)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        c = vae.config.latent_channels
        vae.quant_conv.bias[c:] = -12.0
    vae.train().requires_grad_(True)
    opt = torch.optim.AdamW(vae.parameters(), lr=LR_VAE, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR_VAE, total_steps=VAE_STEPS, pct_start=0.05,
                                                final_div_factor=20.0)
    started, recent = time.perf_counter(), []
    for step in range(VAE_STEPS):
        x = images[torch.randint(0, images.shape[0], (VAE_BATCH,), generator=gen)]
        z = latent_target(x, sf)
        enc = vae.encode(x).latent_dist.mean
        rec = vae.decode(z + 0.1 / sf * torch.randn(z.shape, generator=gen)).sample
        loss = (rec - x).abs().mean() + ((rec - x) ** 2).mean() + ((enc - z) * sf).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        recent.append(float((rec - x).abs().mean().detach()))
        if (step + 1) % 100 == 0:
            log(f"  vae step {step + 1}/{VAE_STEPS}: L1 {np.mean(recent[-100:]):.4f}")
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        x = images[:64]
        l1 = float((vae.decode(vae.encode(x).latent_dist.mean).sample - x).abs().mean())
    return {"vae_steps": VAE_STEPS, "vae_l1": round(l1, 4), "vae_s": round(time.perf_counter() - started, 1)}


class _Captions:
    """Batched caption encoding matching generation.pipelines.prompts for one-chunk captions at weight 1."""

    def __init__(self, pipe):
        from generation.pipelines.prompts import ChunkTokenizer

        self.pipe = pipe
        self.chunker = ChunkTokenizer(pipe.tokenizer)
        self.eos = self.chunker.id_end
        self.pad2 = pipe.tokenizer_2.pad_token_id
        self._tags: dict[str, list[int]] = {}

    def ids(self, captions: list[str]):
        """Token ids [B, 77]: ", "-joined tags tokenize as each tag's tokens joined by the comma token (CLIP's
        BPE works word by word), so tags are tokenized once and cached; a caption past one chunk is refused."""
        torch = _torch()
        rows = []
        for text in captions:
            tokens = []
            for k, tag in enumerate(text.split(", ")):
                if tag not in self._tags:
                    self._tags[tag] = self.chunker.tokenizer(tag, add_special_tokens=False).input_ids
                tokens += ([self.chunker.comma_token] if k else []) + self._tags[tag]
            if len(tokens) > 75:
                raise ValueError(f"caption longer than one chunk: {text!r}")
            rows.append([self.chunker.id_start] + tokens + [self.eos] * (76 - len(tokens)))
        return torch.tensor(rows, dtype=torch.long)

    def encode(self, captions: list[str], zero_mask):
        torch = _torch()
        ids = self.ids(captions)
        ids2 = ids.clone()
        if self.pad2 != self.eos:
            for row in ids2:
                first = int((row == self.eos).nonzero()[0])
                row[first + 1:] = self.pad2
        o1 = self.pipe.text_encoder(ids, output_hidden_states=True)
        o2 = self.pipe.text_encoder_2(ids2, output_hidden_states=True)
        embeds = torch.cat([o1.hidden_states[-2], o2.hidden_states[-2]], dim=-1)
        pooled = o2.text_embeds
        keep = (~zero_mask).float()
        return embeds * keep[:, None, None], pooled * keep[:, None]


def _encode_pool(vae, images):
    torch = _torch()
    with torch.no_grad():
        out = [vae.encode(images[i:i + 64]).latent_dist.mean for i in range(0, len(images), 64)]
    return torch.cat(out) * float(vae.config.scaling_factor)


def train_unet(pipe, pools, *, prediction_type: str, steps: int, seed: int, log, train_text: bool = True) -> dict:
    """Denoising training of ``pipe.unet`` (and its text encoders) on the pooled latents; in place."""
    torch = _torch()
    from generation.tiny.build import training_scheduler

    noise_scheduler = training_scheduler(pipe.scheduler.config, prediction_type)
    ac = noise_scheduler.alphas_cumprod.double()
    snr = (ac / (1.0 - ac).clamp_min(1e-12)).float()
    captions = _Captions(pipe)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    unet, te1, te2 = pipe.unet, pipe.text_encoder, pipe.text_encoder_2
    unet.train().requires_grad_(True)
    groups = [{"params": list(unet.parameters()), "lr": LR_UNET}]
    if train_text:
        # the transformer layers learn; the token tables (49408 rows) stay as built: updating them every step
        # was a third of the step's time, and the layers can read any fixed embedding
        text_params = []
        for te in (te1, te2):
            te.train().requires_grad_(True)
            te.get_input_embeddings().requires_grad_(False)
            text_params += [p for p in te.parameters() if p.requires_grad]
        groups.append({"params": text_params, "lr": LR_TEXT})
    opt = torch.optim.AdamW(groups, weight_decay=1e-4, foreach=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=steps,
                                                pct_start=0.05, final_div_factor=20.0)
    params = [p for g in groups for p in g["params"]]
    started, recent = time.perf_counter(), []
    for step in range(steps):
        big = step % EVERY_128 == EVERY_128 - 1
        specs, latents = pools[128] if big else pools[64]
        bs = BATCH_128 if big else BATCH_64
        idx = rng.integers(0, latents.shape[0], bs)
        x0 = latents[torch.from_numpy(idx)]
        texts = []
        zero = torch.from_numpy(rng.uniform(size=bs) < DROP_ZEROS)
        for i in idx:
            if rng.uniform() < DROP_FILLER:
                texts.append(", ".join(rng.choice(shapes.FILLER, size=int(rng.integers(1, 5)), replace=False)))
            else:
                texts.append(shapes.caption(specs[int(i)], rng))
        embeds, pooled = captions.encode(texts, zero)
        size = x0.shape[-1] * 8
        time_ids = torch.tensor([[size, size, 0, 0, size, size]], dtype=torch.float32).repeat(bs, 1)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (bs,), generator=gen)
        noisy = noise_scheduler.add_noise(x0, noise, t)
        target = noise_scheduler.get_velocity(x0, noise, t) if prediction_type == "v_prediction" else noise
        pred = unet(noisy, t, encoder_hidden_states=embeds,
                    added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample
        per = ((pred - target) ** 2).mean(dim=(1, 2, 3))
        if prediction_type == "epsilon":
            # epsilon MSE = SNR x the x0 MSE: at high noise, where the picture's colours and layout are decided,
            # it hardly sees the caption. Weighting it by 1 + 1/SNR (the v loss's weighting; capped) does.
            per = per * (1.0 + 1.0 / snr[t]).clamp(max=EPS_WEIGHT_CAP)
        loss = per.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        recent.append(float(loss.detach()))
        if (step + 1) % 100 == 0:
            log(f"  {prediction_type} unet step {step + 1}/{steps}: loss {np.mean(recent[-100:]):.4f}")
    for m in (unet, te1, te2):
        m.eval().requires_grad_(False)
    key = "eps" if prediction_type == "epsilon" else "v"
    return {f"{key}_steps": steps, f"{key}_loss": round(float(np.mean(recent[-100:])), 5),
            f"{key}_s": round(time.perf_counter() - started, 1)}


def pretrain(eps_pipe, v_pipe, *, seed: int = 0, log=None) -> dict:
    """Train the VAE, then the epsilon UNet and text encoders, then the v UNet; ``v_pipe`` gets the eps pipe's
    VAE and a copy of its trained modules to start from. Returns measurements for the manifest."""
    torch = _torch()
    say = log or (lambda msg: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # modest, and faster on a shared machine (no OpenMP spin-waiting)
    try:
        torch.manual_seed(seed)
        say("pre-training the tiny VAE on procedural pictures")
        stats = train_vae(eps_pipe.vae, seed=seed + 1, log=say)
        specs64, img64 = make_pool(seed + 2, POOL_64, 64)
        specs128, img128 = make_pool(seed + 3, POOL_128, 128)
        pools = {64: (specs64, _encode_pool(eps_pipe.vae, img64)), 128: (specs128, _encode_pool(eps_pipe.vae, img128))}
        stats["latent_std"] = [round(float(v), 3) for v in pools[64][1].std(dim=(0, 2, 3))]
        say("pre-training the epsilon UNet and text encoders")
        stats.update(train_unet(eps_pipe, pools, prediction_type="epsilon", steps=EPS_STEPS, seed=seed + 4, log=say))
        v_pipe.vae.load_state_dict(eps_pipe.vae.state_dict())
        for name in ("unet", "text_encoder", "text_encoder_2"):
            getattr(v_pipe, name).load_state_dict(copy.deepcopy(getattr(eps_pipe, name).state_dict()))
        say("pre-training the v-prediction UNet (from the epsilon weights)")
        stats.update(train_unet(v_pipe, pools, prediction_type="v_prediction", steps=V_STEPS, seed=seed + 5, log=say))
    finally:
        torch.set_num_threads(threads)
    return stats
