"""The training loop every LoRA method shares, on ``accelerate.Accelerator``: mixed precision, gradient
accumulation, DDP across processes, checkpoints that resume exactly, a deadline that pauses cleanly.

Checkpoint layout (``<work_dir>/checkpoints/step-00000050/``, written to ``.tmp-step-...`` and renamed when
complete, the oldest beyond ``checkpoints_total_limit`` deleted)::

    lora.safetensors        the LoRA parameters (peft names, prefixed unet. / text_encoder. / text_encoder_2.)
    optimizer.bin           AdamW state            (accelerate save_state)
    scheduler.bin           LR scheduler state     (accelerate save_state)
    random_states_<i>.pkl   RNG states and accelerate's step, one per process (accelerate save_state)
    custom_checkpoint_0.pkl the TrainState: step (= the data position, see data.py) and fingerprint
    trainer_state.json      the same, readable: {"step", "fingerprint", "max_train_steps"}

Progress is reported as dicts (the entry point prints them as JSON lines): ``{"event": "step", "step",
"max_steps", "loss", "lr", "elapsed_s", "eta_s", ...method metrics}`` every ``log_every`` steps, plus
``checkpoint``, ``sample`` (an image of the model at that step, when ``sample_prompts`` are set), ``paused`` and
``done`` events. Only the main process reports.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import TrainingError

STATE_FILE = "trainer_state.json"
LORA_FILE = "lora.safetensors"


@dataclass
class LoopResult:
    status: str  # "done" | "paused"
    step: int
    checkpoint: str | None
    metrics: dict


class TrainState:
    """What accelerate checkpoints besides models/optimizer/scheduler (register_for_checkpointing)."""

    def __init__(self, fingerprint: dict):
        self.step = 0
        self.fingerprint = fingerprint

    def state_dict(self) -> dict:
        return {"step": self.step, "fingerprint": self.fingerprint}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


def make_accelerator(config):
    """An Accelerator for ``config``; in a single process, accelerate's singletons are reset first so several
    runs with different settings can follow each other in one worker."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        AcceleratorState._reset_state()
        GradientState._reset_state()
    # cpu=True on a host without CUDA: under torchrun (accelerate launch --multi_gpu) accelerate then runs
    # MULTI_CPU on gloo; without it, it would silently run N independent single-process trainings
    cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")
    try:
        return Accelerator(mixed_precision=config.mixed_precision, cpu=cpu,
                           gradient_accumulation_steps=config.gradient_accumulation_steps,
                           step_scheduler_with_optimizer=False)
    except (ValueError, RuntimeError) as exc:
        raise TrainingError(f"cannot set up training with mixed_precision={config.mixed_precision}: {exc}") from None


def weight_dtype(accelerator):
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)


def build_optimizer_and_scheduler(param_groups, config):
    from diffusers.optimization import get_scheduler

    optimizer = torch.optim.AdamW(param_groups, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                                  weight_decay=config.adam_weight_decay, eps=config.adam_epsilon)
    scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.lr_warmup_steps,
                              num_training_steps=config.max_train_steps, num_cycles=config.lr_scheduler_num_cycles,
                              power=config.lr_scheduler_power)
    return optimizer, scheduler


def checkpoints_dir(work_dir) -> Path:
    return Path(work_dir) / "checkpoints"


def latest_checkpoint(work_dir) -> Path | None:
    root = checkpoints_dir(work_dir)
    if not root.is_dir():
        return None
    done = [p for p in root.iterdir() if p.name.startswith("step-") and (p / STATE_FILE).is_file()]
    return max(done, key=lambda p: int(p.name[5:]), default=None)


def check_resume(saved: dict, current: dict, step: int) -> None:
    """Refuse a resume whose schedule, data or process count differs from the checkpoint's."""
    diffs = [f"{k} {saved.get(k)!r} -> {current.get(k)!r}" for k in sorted(set(saved) | set(current))
             if saved.get(k) != current.get(k)]
    if diffs:
        raise TrainingError(f"cannot resume from the checkpoint at step {step}: the run was started with other "
                            f"settings ({'; '.join(diffs)}); resume with the original settings or start a new run")


class Loop:
    """One run of ``method`` (see lora_method.LoraMethod for what a method provides)."""

    def __init__(self, method, config, accelerator, *, work_dir, fingerprint, report):
        self.method, self.config, self.acc = method, config, accelerator
        self.work_dir = Path(work_dir)
        self.state = TrainState(fingerprint)
        self.report = report if accelerator.is_main_process else (lambda event: None)
        self.models = method.models()
        optimizer, scheduler = build_optimizer_and_scheduler(method.param_groups(), config)
        prepared = accelerator.prepare(*self.models, optimizer, scheduler)
        self.wrapped, self.optimizer, self.scheduler = list(prepared[:-2]), prepared[-2], prepared[-1]
        accelerator.register_for_checkpointing(self.state)
        accelerator.register_save_state_pre_hook(self._save_hook)
        accelerator.register_load_state_pre_hook(self._load_hook)
        self.trainable = [p for g in method.param_groups() for p in g["params"]]

    # --- checkpoints -------------------------------------------------------------------------------------------
    def _save_hook(self, models, weights, output_dir):
        weights.clear()  # only the LoRA parameters are state; accelerate would write the whole UNet
        if self.acc.is_main_process:
            from safetensors.torch import save_file

            save_file({k: v.detach().float().cpu().contiguous() for k, v in self.method.lora_state_dict().items()},
                      str(Path(output_dir) / LORA_FILE))

    def _load_hook(self, models, input_dir):
        models.clear()
        from safetensors.torch import load_file

        self.method.load_lora_state_dict(load_file(str(Path(input_dir) / LORA_FILE)))

    def save_checkpoint(self) -> str:
        root = checkpoints_dir(self.work_dir)
        final = root / f"step-{self.state.step:08d}"
        tmp = root / f".tmp-step-{self.state.step:08d}"
        if self.acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.acc.wait_for_everyone()
        self.acc.save_state(str(tmp))
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            (tmp / STATE_FILE).write_text(json.dumps({"step": self.state.step, "fingerprint": self.state.fingerprint,
                                                      "max_train_steps": self.config.max_train_steps}, sort_keys=True))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            kept = sorted((p for p in root.iterdir() if p.name.startswith("step-")), key=lambda p: int(p.name[5:]))
            for old in kept[:-self.config.checkpoints_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
        self.acc.wait_for_everyone()
        self.report({"event": "checkpoint", "step": self.state.step, "path": str(final)})
        return str(final)

    def resume(self) -> str | None:
        found = latest_checkpoint(self.work_dir)
        if found is None:
            return None
        saved = json.loads((found / STATE_FILE).read_text())
        check_resume(saved["fingerprint"], self.state.fingerprint, saved["step"])
        self.acc.load_state(str(found))
        if self.state.step != saved["step"]:
            raise TrainingError(f"checkpoint {found.name} is inconsistent (state says step {self.state.step})")
        self.report({"event": "resumed", "step": self.state.step, "path": str(found)})
        return str(found)

    # --- sample images -----------------------------------------------------------------------------------------
    def sample(self) -> None:
        """Sample images of the model as it is now, when this step is due for them (training.trainers.samples);
        the main process renders, the others wait."""
        from . import samples

        if not samples.due(self.config, self.state.step):
            return
        if self.acc.is_main_process:
            try:
                paths = samples.render_samples(self.method.parent, self.config, step=self.state.step,
                                               work_dir=self.work_dir, device=self.acc.device,
                                               dtype=weight_dtype(self.acc))
            except Exception as exc:  # a sample that cannot be drawn (memory, disk) must not stop the training
                paths = []
                self.report({"event": "sample_failed", "step": self.state.step,
                             "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})
            for k, path in enumerate(paths):
                self.report({"event": "sample", "step": self.state.step, "index": k, "path": str(path),
                             "prompt": samples.sample_prompts(self.config)[k]})
        self.acc.wait_for_everyone()

    # --- the loop ----------------------------------------------------------------------------------------------
    def _one_step(self) -> dict:
        acc, cfg = self.acc, self.config
        totals: dict[str, float] = {}
        for micro in range(cfg.gradient_accumulation_steps):
            with acc.accumulate(*self.wrapped):
                loss, metrics = self.method.loss(self.wrapped, self.state.step, micro, acc)
                acc.backward(loss)
                if acc.sync_gradients and cfg.max_grad_norm > 0:
                    acc.clip_grad_norm_(self.trainable, cfg.max_grad_norm)
                if micro == cfg.gradient_accumulation_steps - 1 and not acc.sync_gradients:
                    raise TrainingError("gradient accumulation is out of step with the optimizer steps")
                lr = self.scheduler.get_last_lr()[0]
                self.optimizer.step()
                if acc.sync_gradients:
                    self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            for k, v in {"loss": loss.detach(), **metrics}.items():
                totals[k] = totals.get(k, 0.0) + float(v) / cfg.gradient_accumulation_steps
        self.state.step += 1
        return self._mean_over_processes(totals) | {"lr": lr}

    def _mean_over_processes(self, values: dict) -> dict:
        if self.acc.num_processes == 1:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.acc.device)
        t = self.acc.reduce(t, reduction="mean")
        return {k: float(v) for k, v in zip(keys, t.tolist())}

    def _should_pause(self, deadline, stop_after, done_now, step_s) -> bool:
        want = bool(stop_after is not None and done_now >= stop_after)
        if deadline is not None:
            want = want or time.time() + 1.5 * step_s + 2.0 >= deadline
        if self.acc.num_processes > 1:  # every process must take the same decision
            flag = torch.tensor([1.0 if want else 0.0], device=self.acc.device)
            want = bool(self.acc.reduce(flag, reduction="sum").item() > 0)
        return want

    def run(self, *, deadline: float | None = None, stop_after: int | None = None) -> LoopResult:
        """Train from the latest checkpoint (if any) to max_train_steps, or pause at a checkpoint when the
        deadline (unix time) is near or ``stop_after`` steps were done in this session (at least one step is done
        per session, so a re-enqueued run always moves on)."""
        cfg = self.config
        self.resume()
        for m in self.models:
            m.train()
        start, done_now, metrics, last_ckpt = time.time(), 0, {}, None
        while self.state.step < cfg.max_train_steps:
            metrics = self._one_step()
            done_now += 1
            step_s = (time.time() - start) / done_now
            if self.state.step % cfg.log_every == 0 or self.state.step == cfg.max_train_steps:
                self.report({"event": "step", "step": self.state.step, "max_steps": cfg.max_train_steps,
                             **{k: float(f"{v:.7g}") for k, v in metrics.items()}, "elapsed_s": round(time.time() - start, 3),
                             "eta_s": round(step_s * (cfg.max_train_steps - self.state.step), 1)})
            if self.state.step == cfg.max_train_steps:
                self.sample()
                break
            if self.state.step % cfg.checkpointing_steps == 0:
                last_ckpt = self.save_checkpoint()
            self.sample()
            if self._should_pause(deadline, stop_after, done_now, step_s):
                if last_ckpt is None or not last_ckpt.endswith(f"{self.state.step:08d}"):
                    last_ckpt = self.save_checkpoint()
                self.report({"event": "paused", "step": self.state.step, "max_steps": cfg.max_train_steps,
                             "checkpoint": last_ckpt})
                return LoopResult("paused", self.state.step, last_ckpt, metrics)
        self.acc.wait_for_everyone()
        return LoopResult("done", self.state.step, last_ckpt, metrics)
