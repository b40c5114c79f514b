"""From dataset rows to what the UNet eats: pixels, latents, caption embeddings, SDXL time ids; the data order and
the per-example random streams that make a resumed run (or a run on N processes) draw exactly what an
uninterrupted single-process run draws.

**Order.** Examples are visited epoch by epoch, each epoch a permutation of the examples seeded by (seed, epoch).
Position k of that stream (k = 0, 1, 2, ...) is consumed at optimizer step s, micro-step m, by process p, slot j
when k = ((s * accumulation + m) * processes + p) * batch + j; the data position of a checkpoint is its step.

**Randomness.** Everything drawn for the example at position k (timestep, noise, offset noise, perturbation
noise, VAE posterior sample) comes from a torch.Generator seeded by (seed, stream, k). So 1 process with batch 2
and 2 processes with batch 1 train on the same examples with the same noise, and a resume needs no RNG state
(accelerate saves the global RNG states in each checkpoint as well).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import TrainingError


def stream_generator(seed: int, stream: str, position: int) -> torch.Generator:
    digest = hashlib.sha256(f"{int(seed)}:{stream}:{int(position)}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def epoch_order(seed: int, epoch: int, n: int, stream: str = "epoch") -> list[int]:
    return torch.randperm(n, generator=stream_generator(seed, stream, epoch)).tolist()


class Order:
    """Position k of the example stream -> example index (epoch permutations, cached)."""

    def __init__(self, seed: int, n: int, stream: str = "epoch"):
        if n < 1:
            raise TrainingError("no training examples")
        self.seed, self.n, self.stream = seed, n, stream
        self._perms: dict[int, list[int]] = {}

    def __getitem__(self, k: int) -> int:
        epoch, i = divmod(int(k), self.n)
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.clear()
            self._perms[epoch] = epoch_order(self.seed, epoch, self.n, self.stream)
        return self._perms[epoch][i]


def positions(step: int, micro: int, *, accumulation: int, processes: int, process: int, batch: int) -> list[int]:
    base = ((step * accumulation + micro) * processes + process) * batch
    return list(range(base, base + batch))


@dataclass(frozen=True)
class Prepared:
    pixels: torch.Tensor  # [3, R, R] in -1..1
    time_ids: tuple  # (orig_h, orig_w, crop_top, crop_left, R, R): SDXL's added time ids


def prepare_image(data: bytes, resolution: int) -> Prepared:
    """Decode, resize the shorter side to ``resolution`` (bicubic), centre-crop to a square, scale to -1..1.
    Time ids as SDXL trained them: original size, crop top-left (in the resized image), target size."""
    import numpy as np
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:
        raise TrainingError(f"unreadable image in the dataset: {type(exc).__name__}: {exc}") from None
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    image = image.convert("RGB")
    w, h = image.size
    scale = resolution / min(w, h)
    nw, nh = max(resolution, round(w * scale)), max(resolution, round(h * scale))
    if (nw, nh) != (w, h):
        image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    top, left = (nh - resolution) // 2, (nw - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    arr = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return Prepared(torch.from_numpy(arr).permute(2, 0, 1).contiguous(), (h, w, top, left, resolution, resolution))


def encode_latents(vae, pixels: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """VAE posterior samples (one generator per image) times the VAE's scaling factor, float32. The VAE runs in
    float32 always (the diffusers example does the same to avoid NaN latents)."""
    with torch.no_grad():
        dist = vae.encode(pixels.to(vae.device, torch.float32)).latent_dist
        eps = torch.stack([torch.randn(dist.mean.shape[1:], generator=g) for g in generators]).to(dist.mean.device)
        latents = dist.mean + dist.std * eps
    return (latents * vae.config.scaling_factor).float()


class ExampleStore:
    """Latents and caption embeddings of dataset images, computed once (cached) or on every use.

    ``latents(keys, gens)`` where a key is (row, image); ``embeds(rows)``. With caching the VAE sample is drawn
    once per image with a generator seeded by (seed, image hash), so the cache is the same on every process and
    after a resume; without caching each use draws from the caller's per-example generator."""

    def __init__(self, dataset, parent, encoder, *, resolution: int, seed: int, cache_latents: bool,
                 cache_text: bool, cache_dir=None, write_cache: bool = True):
        self.dataset, self.parent, self.encoder = dataset, parent, encoder
        self.resolution, self.seed = resolution, seed
        self.cache_latents, self.cache_text = cache_latents, cache_text
        self.chunks = encoder.chunk_count(dataset.columns["caption"])  # every caption is padded to this
        self._latents: dict[tuple[int, int], torch.Tensor] = {}
        self._time_ids: dict[tuple[int, int], tuple] = {}
        self._embeds: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.cache_file = None
        if cache_dir is not None and cache_latents:
            # cached latents on disk, so a resumed run (a next time slice) does not encode every image again
            key = hashlib.sha256(f"{dataset.sha256}:{parent.sha256}:{resolution}:{seed}".encode()).hexdigest()[:16]
            self.cache_file = Path(cache_dir) / f"latents-{key}.safetensors"
            self.write_cache = write_cache
            self._load_disk_cache()

    def _load_disk_cache(self) -> None:
        from safetensors.torch import load_file

        if self.cache_file is not None and self.cache_file.is_file():
            for name, lat in load_file(str(self.cache_file)).items():
                row, which = name.split("_")
                self._latents[(int(row), int(which))] = lat

    def _save_disk_cache(self) -> None:
        import os

        from safetensors.torch import save_file

        if self.cache_file is None or not self.write_cache or not self._latents:
            return
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_file.with_name(f".{self.cache_file.name}.{os.getpid()}.tmp")
        save_file({f"{r}_{j}": v.contiguous() for (r, j), v in self._latents.items()}, str(tmp))
        os.replace(tmp, self.cache_file)

    def _prepare(self, key):
        row, which = key
        prepared = prepare_image(self.dataset.image(row, which), self.resolution)
        self._time_ids[key] = prepared.time_ids
        return prepared

    def warm(self, keys, rows, *, batch: int = 8) -> None:
        """Fill the caches for ``keys`` / ``rows`` (only the enabled ones)."""
        if self.cache_latents:
            todo = [k for k in dict.fromkeys(keys) if k not in self._latents]
            for start in range(0, len(todo), batch):
                part = todo[start:start + batch]
                pixels = torch.stack([self._prepare(k).pixels for k in part])
                gens = [stream_generator(self.seed, "vae:" + hashlib.sha256(self.dataset.image(*k)).hexdigest(), 0)
                        for k in part]
                for k, lat in zip(part, encode_latents(self.parent.vae, pixels, gens).cpu()):
                    self._latents[k] = lat
            if todo:
                self._save_disk_cache()
        if self.cache_text:
            with torch.no_grad():
                for row in dict.fromkeys(rows):
                    self._embed_cached(row)

    def latents(self, keys, gens) -> torch.Tensor:
        if self.cache_latents:
            missing = [k for k in keys if k not in self._latents]
            if missing:
                self.warm(missing, [])
            return torch.stack([self._latents[k] for k in keys])
        pixels = torch.stack([self._prepare(k).pixels for k in keys])
        return encode_latents(self.parent.vae, pixels, gens)

    def time_ids(self, keys) -> torch.Tensor:
        for k in keys:
            if k not in self._time_ids:
                self._prepare(k)
        return torch.tensor([self._time_ids[k] for k in keys], dtype=torch.float32)

    def _embed_cached(self, row):
        caption, skip = self.dataset.value("caption", row), int(self.dataset.value("clip_skip", row))
        key = (caption, skip)
        if key not in self._embeds:
            e, p = self.encoder.encode_one(caption, skip)
            self._embeds[key] = (e.detach().float().cpu(), p.detach().float().cpu())
        return self._embeds[key]

    def embeds(self, rows, encoders=None):
        """([B, 77n, D], [B, P]) for the captions of ``rows`` (with gradients when not cached)."""
        skips = [int(self.dataset.value("clip_skip", r)) for r in rows]
        if self.cache_text:
            with torch.no_grad():
                encoded = [self._embed_cached(r) for r in rows]
        else:
            encoded = [self.encoder.encode_one(self.dataset.value("caption", r), s, encoders)
                       for r, s in zip(rows, skips)]
        return self.encoder.stack(encoded, skips, self.chunks)


def draw_timesteps_and_noise(gens, shape, num_train_timesteps: int):
    """One timestep (uniform over 0..T-1, as the diffusers example and kohya draw) and one noise tensor per
    generator."""
    t = torch.stack([torch.randint(0, num_train_timesteps, (1,), generator=g)[0] for g in gens])
    noise = torch.stack([torch.randn(shape, generator=g) for g in gens])
    return t, noise
