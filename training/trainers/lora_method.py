"""What the DPO and supervised LoRA trainers share: the parent on the device with LoRA adapters, the example
store, the per-example random streams, the LoRA state for checkpoints. ``loop.Loop`` drives a method through
``models``, ``param_groups``, ``loss``, ``lora_state_dict`` and ``load_lora_state_dict``."""

from __future__ import annotations

import torch

from .data import ExampleStore, draw_timesteps_and_noise, positions, stream_generator
from .errors import TrainingError
from .loop import weight_dtype
from .parent import (
    TEXT_ENCODER_TARGET_CLASSES,
    UNET_TARGET_CLASSES,
    CaptionEncoder,
    Wrapped,
    add_lora,
    lora_parameters,
    place,
)

COMPONENTS = ("unet", "text_encoder", "text_encoder_2")


class LoraMethod:
    name = "lora"

    def __init__(self, config, parent, dataset, accelerator, *, cache_dir=None):
        self.config, self.parent, self.dataset = config, parent, dataset
        self.device = accelerator.device
        self.num_processes, self.process_index = accelerator.num_processes, accelerator.process_index
        dtype = weight_dtype(accelerator)
        place(parent.vae, self.device, torch.float32)
        for name in COMPONENTS:
            place(getattr(parent, name), self.device, dtype)
        torch.manual_seed(config.seed)  # LoRA init: the same on every process and every run
        add_lora(parent.unet, UNET_TARGET_CLASSES, dim=config.network_dim, alpha=config.network_alpha)
        self.trained = ["unet"]
        if not config.network_train_unet_only:
            for name in ("text_encoder", "text_encoder_2"):
                add_lora(getattr(parent, name), TEXT_ENCODER_TARGET_CLASSES, dim=config.network_dim,
                         alpha=config.network_alpha)
                self.trained.append(name)
        if config.gradient_checkpointing:
            parent.unet.enable_gradient_checkpointing()
            for name in self.trained[1:]:
                getattr(parent, name).gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.encoder = CaptionEncoder(parent)
        self.store = ExampleStore(dataset, parent, self.encoder, resolution=config.resolution, seed=config.seed,
                                  cache_latents=config.cache_latents, cache_text=config.cache_text_encoder_outputs,
                                  cache_dir=cache_dir, write_cache=accelerator.is_main_process)
        down = 2 ** (len(parent.vae.config.block_out_channels) - 1)
        self.latent_shape = (int(parent.unet.config.in_channels), config.resolution // down, config.resolution // down)
        self.num_train_timesteps = int(parent.noise_scheduler.config.num_train_timesteps)

    def offload_frozen(self) -> None:
        """Once latents / caption embeddings are cached, the VAE / text encoders wait on the CPU (kohya does the
        same): on a GPU that frees their memory for the UNet."""
        if self.config.cache_latents:
            self.parent.vae.to("cpu")
        if self.config.cache_text_encoder_outputs and len(self.trained) == 1:
            for name in ("text_encoder", "text_encoder_2"):
                getattr(self.parent, name).to("cpu")

    # --- what the loop asks for --------------------------------------------------------------------------------
    def models(self) -> list:
        return [getattr(self.parent, name) for name in self.trained]

    def param_groups(self) -> list[dict]:
        groups = [{"params": list(lora_parameters(self.parent.unet).values()), "lr": self.config.learning_rate}]
        te_lr = self.config.text_encoder_lr if self.config.text_encoder_lr is not None else self.config.learning_rate
        for name in self.trained[1:]:
            groups.append({"params": list(lora_parameters(getattr(self.parent, name)).values()), "lr": te_lr})
        return groups

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{name}.{k}": v for name in self.trained for k, v in lora_parameters(getattr(self.parent, name)).items()}

    def load_lora_state_dict(self, state: dict) -> None:
        mine = self.lora_state_dict()
        if set(state) != set(mine):
            raise TrainingError("the checkpoint's LoRA layers do not match this run's (other parent or network settings)")
        with torch.no_grad():
            for k, p in mine.items():
                p.copy_(state[k].to(p.device, p.dtype))

    def loss(self, wrapped, step: int, micro: int, accelerator):
        raise NotImplementedError

    # --- helpers for the methods -------------------------------------------------------------------------------
    def positions(self, step: int, micro: int) -> list[int]:
        return positions(step, micro, accumulation=self.config.gradient_accumulation_steps,
                         processes=self.num_processes, process=self.process_index, batch=self.config.train_batch_size)

    def draws(self, stream: str, pos: list[int]):
        """(generators, timesteps, noise) for the examples at stream positions ``pos``."""
        gens = [stream_generator(self.config.seed, stream, k) for k in pos]
        t, noise = draw_timesteps_and_noise(gens, self.latent_shape, self.num_train_timesteps)
        return gens, t.to(self.device), noise.to(self.device)

    def conditioning(self, rows: list[int], keys: list[tuple[int, int]], dtype, wrapped=None):
        """UNet keyword arguments for these rows' captions and these images' time ids (``wrapped``: the prepared
        models, whose text encoders are called when they are trained)."""
        encoders = None
        if wrapped is not None and len(self.trained) == 3:
            encoders = (Wrapped(wrapped[1], self.parent.text_encoder), Wrapped(wrapped[2], self.parent.text_encoder_2))
        embeds, pooled = self.store.embeds(rows, encoders)
        return dict(encoder_hidden_states=embeds.to(self.device, dtype),
                    added_cond_kwargs={"time_ids": self.store.time_ids(keys).to(self.device, dtype),
                                       "text_embeds": pooled.to(self.device, dtype)})

    def unwrapped(self, accelerator, wrapped):
        """The UNet without its DDP / autocast wrappers: the module we gave ``prepare`` (accelerate's unwrap_model
        walks every module looking for compiled regions, ~35 ms a call on the tiny UNet)."""
        return self.parent.unet
