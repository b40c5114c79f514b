"""The entry point of a LoRA run: ``train_lora(config, parent, paths)``. In-process, or once per process under
``accelerate launch --num_processes N`` (see ``cli``); it never touches a database: it reports progress events
and writes files.

Files: ``<output_dir>/<output_name>.safetensors`` (kohya format, see ``kohya``), ``<output_dir>/training_result.json``
(``{"status": "done", "method", "steps", "lora_file", "metrics", "dataset", "parent", "config"}``), and in
``<work_dir>``: ``checkpoints/`` (see ``loop``), ``cache/latents-<key>.safetensors`` (the cached VAE latents,
keyed by dataset, parent, resolution and seed, so a resumed run does not encode again) and ``done.json`` (the result plus the run's fingerprint: a finished
run called again returns it without training, so a redelivered task does not train twice).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .config import ParentModel, RunPaths, TrainConfig, resume_fingerprint, validate
from .errors import TrainingError

RESULT_FILE = "training_result.json"
DONE_FILE = "done.json"


@dataclass(frozen=True)
class TrainResult:
    status: str  # "done" | "paused"
    step: int
    max_steps: int
    lora_file: str | None  # set when done
    result_file: str | None  # set when done
    checkpoint: str | None  # the checkpoint a paused run resumes from
    metrics: dict


def print_progress(event: dict) -> None:
    """The default progress sink: one JSON object per line on stdout."""
    sys.stdout.write(json.dumps(event, sort_keys=True) + "\n")
    sys.stdout.flush()


def _finished(paths: RunPaths, fingerprint: dict) -> dict | None:
    done = Path(paths.work_dir) / DONE_FILE
    if not done.is_file():
        return None
    data = json.loads(done.read_text())
    if data.get("fingerprint") == fingerprint and data.get("lora_file") and Path(data["lora_file"]).is_file():
        return data
    return None


def _method_class(method: str):
    from .dpo import DpoMethod
    from .sft import SftMethod

    return {"dpo": DpoMethod, "sft": SftMethod}[method]


def train_lora(config: TrainConfig, parent: ParentModel, paths: RunPaths, *, on_progress=None,
               deadline: float | None = None, time_slice_s: float | None = None,
               stop_after: int | None = None) -> TrainResult:
    """Train (or resume, or find finished) the LoRA run described by ``config`` on ``parent``.

    ``deadline`` (unix time) or ``time_slice_s`` (seconds from now): pause at a checkpoint before it and return
    status "paused" (call again to continue); ``stop_after``: pause after that many steps in this call.
    Raises TrainingError (one line) for bad settings, files or a refused resume.
    """
    report = on_progress if on_progress is not None else print_progress
    validate(config, parent)
    if time_slice_s is not None:
        deadline = min(deadline or float("inf"), time.time() + float(time_slice_s))
    from .dataset import read_dataset
    from .parent import checkpoint_sha256

    dataset = read_dataset(paths.dataset)
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    fingerprint = resume_fingerprint(config, num_processes=processes, dataset_sha256=dataset.sha256)
    fingerprint["parent_sha256"] = checkpoint_sha256(parent.path) if Path(parent.path).exists() else ""
    finished = _finished(paths, fingerprint)
    if finished is not None:
        if int(os.environ.get("RANK", "0")) == 0:
            report({"event": "done", "step": finished["steps"], "lora_file": finished["lora_file"], "cached": True})
        return TrainResult("done", finished["steps"], config.max_train_steps, finished["lora_file"],
                           finished["result_file"], None, finished.get("metrics", {}))
    return _train(config, parent, paths, dataset, fingerprint, report, deadline, stop_after)


def _train(config, parent_spec, paths, dataset, fingerprint, report, deadline, stop_after) -> TrainResult:
    from .loop import Loop, make_accelerator
    from .parent import load_parent

    started = time.time()
    accelerator = make_accelerator(config)
    parent = load_parent(parent_spec)
    method = _method_class(config.method)(config, parent, dataset, accelerator,
                                          cache_dir=Path(paths.work_dir) / "cache")
    loop = Loop(method, config, accelerator, work_dir=paths.work_dir, fingerprint=fingerprint, report=report)
    examples = len(getattr(method, "pairs", None) or getattr(method, "examples", []))
    loop.report({"event": "start", "method": config.method, "max_steps": config.max_train_steps,
                 "examples": examples, "num_processes": accelerator.num_processes,
                 "prediction_type": parent_spec.prediction_type, "dataset_sha256": dataset.sha256})
    outcome = loop.run(deadline=deadline, stop_after=stop_after)
    if outcome.status == "paused":
        return TrainResult("paused", outcome.step, config.max_train_steps, None, None, outcome.checkpoint,
                           outcome.metrics)
    out_dir = Path(paths.output_dir)
    lora_file, result_file = out_dir / f"{config.output_name}.safetensors", out_dir / RESULT_FILE
    if accelerator.is_main_process:
        _write_outputs(config, parent, method, accelerator, dataset, outcome, started, lora_file, result_file,
                       Path(paths.work_dir), fingerprint)
        loop.report({"event": "done", "step": outcome.step, "lora_file": str(lora_file),
                     "result_file": str(result_file), **outcome.metrics})
    accelerator.wait_for_everyone()
    return TrainResult("done", outcome.step, config.max_train_steps, str(lora_file), str(result_file), None,
                       outcome.metrics)


def _write_outputs(config, parent, method, accelerator, dataset, outcome, started, lora_file, result_file,
                   work_dir, fingerprint) -> None:
    from .kohya import kohya_metadata, save_kohya_lora

    modules = {name: accelerator.unwrap_model(m) for name, m in zip(method.trained, method.models())}
    examples = len(getattr(method, "pairs", None) or getattr(method, "examples", []))
    meta = kohya_metadata(config, parent=parent, dataset_info=dataset.info, steps=outcome.step, num_images=examples,
                          started_at=started, num_processes=accelerator.num_processes)
    save_kohya_lora(lora_file, modules, alpha=config.network_alpha, unet_config=dict(parent.unet.config), metadata=meta)
    result = {"status": "done", "method": config.method, "steps": outcome.step, "lora_file": str(lora_file),
              "result_file": str(result_file), "metrics": outcome.metrics,
              "dataset": dataclasses.asdict(dataset.info), "parent": dataclasses.asdict(parent.spec),
              "parent_sha256": parent.sha256, "config": dataclasses.asdict(config)}
    result_file.write_text(json.dumps(result, sort_keys=True, indent=2))
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / DONE_FILE).write_text(json.dumps({**result, "fingerprint": fingerprint}, sort_keys=True))


def train(config, paths: RunPaths, *, parent: ParentModel | None = None, **kwargs):
    """One entry for every method: a TrainConfig (dpo, sft) with its parent, or a RewardConfig."""
    from .config import RewardConfig

    if isinstance(config, RewardConfig):
        from .reward import train_reward

        return train_reward(config, paths, **kwargs)
    if parent is None:
        raise TrainingError(f"method {config.method} needs a parent model")
    return train_lora(config, parent, paths, **kwargs)
