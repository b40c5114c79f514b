"""``python -m training.trainers.cli RUN.json`` -- one training run from a JSON description, in-process or under
``accelerate launch --num_processes N -m training.trainers.cli RUN.json`` (the same code on every process).

RUN.json: ``{"config": {...TrainConfig or RewardConfig fields, "method": "dpo" | "sft" | "reward"},
"parent": {"path", "prediction_type", "config_path"} (LoRA methods), "paths": {"dataset", "work_dir",
"output_dir"}}``. Progress events go to stdout as JSON lines (main process only); a bad setting or file prints
``{"event": "error", "message": ...}`` and exits 2; a paused run exits 3 (call again to resume); done exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import ParentModel, RewardConfig, RunPaths, TrainConfig, from_json
from .errors import TrainingError

EXIT_DONE, EXIT_ERROR, EXIT_PAUSED = 0, 2, 3


def load_run(data: dict):
    """(config, parent or None, paths) from a RUN.json dict; TrainingError for unknown or missing fields."""
    try:
        cfg, paths = dict(data["config"]), RunPaths(**data["paths"])
    except (KeyError, TypeError) as exc:
        raise TrainingError(f"run description needs \"config\" and \"paths\" (dataset, work_dir, output_dir): {exc}") from None
    if cfg.get("method") == "reward":
        return from_json(RewardConfig, cfg), None, paths
    try:
        parent = ParentModel(**data["parent"])
    except (KeyError, TypeError) as exc:
        raise TrainingError(f"a LoRA run needs \"parent\" (path, prediction_type, config_path): {exc}") from None
    return from_json(TrainConfig, cfg), parent, paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.trainers.cli", description=__doc__.split("\n")[0])
    parser.add_argument("run", help="RUN.json")
    parser.add_argument("--time-slice", type=float, default=None, help="pause at a checkpoint before this many s")
    parser.add_argument("--stop-after", type=int, default=None, help="pause after this many steps")
    args = parser.parse_args(argv)
    from .run import print_progress, train

    try:
        config, parent, paths = load_run(json.loads(Path(args.run).read_text()))
        result = train(config, paths, parent=parent, time_slice_s=args.time_slice, stop_after=args.stop_after)
    except (TrainingError, OSError, ValueError) as exc:
        print_progress({"event": "error", "message": " ".join(str(exc).split())})
        return EXIT_ERROR
    return EXIT_PAUSED if getattr(result, "status", "done") == "paused" else EXIT_DONE


if __name__ == "__main__":
    sys.exit(main())
