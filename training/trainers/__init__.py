"""The trainers: Diffusion-DPO LoRA, supervised ("aesthetic") LoRA, a Bradley-Terry reward model, for SDXL-family
parents (epsilon and v-prediction). No Django anywhere here; torch, diffusers, peft and accelerate are imported
only by the worker-side modules (``run``, ``loop``, ``dpo``, ``sft``, ``parent``, ``kohya``, ``reward``, ``bench``).
Importing this package, ``config``, ``dataset``, ``judge`` or ``errors`` is cheap (the web tier may).

What the Django side calls:

* Settings: ``config.TrainConfig`` (kohya names; ``config.defaults("dpo" | "sft")``), ``config.RewardConfig``,
  ``config.ParentModel(path, prediction_type, config_path)``, ``config.RunPaths(dataset, work_dir, output_dir)``;
  ``config.to_json`` / ``config.from_json`` for storage.
* Validation before queueing (lists of one-line messages): ``config.config_errors(config, prediction_type)``,
  ``config.parent_errors(parent)``, ``dataset.dataset_errors(path, method, kto_weight=...)``.
* Datasets: ``dataset.PreferenceRow`` and ``dataset.write_dataset(rows, path, vote_log_hash=, filters=)``.
* Running: ``run.train(config, paths, parent=..., on_progress=callable, deadline=unix_time,
  time_slice_s=seconds)`` -> ``run.TrainResult`` (``status`` "done" | "paused") or ``reward.RewardResult``;
  TrainingError (one line) for bad input or a refused resume. Under ``accelerate launch`` each process calls the
  same function (``python -m training.trainers.cli RUN.json`` does exactly that).
* Progress: dicts with ``event`` in start / step / checkpoint / resumed / paused / done (see ``loop``), printed as
  JSON lines when no callback is given.
* Files: see ``run`` (LoRA, training_result.json, done.json), ``loop`` (checkpoints), ``kohya`` (LoRA format) and
  ``reward`` (reward model format, ``reward.score(images, prompts, model_file=..., embedder=...)``).
"""

from .errors import TrainingError

__all__ = ["TrainingError"]
