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
import re
import sys
from collections.abc import Callable
from pathlib import Path

from .config import ParentModel, RewardConfig, RunPaths, TrainConfig, from_json
from .errors import TrainingError

EXIT_DONE, EXIT_ERROR, EXIT_PAUSED = 0, 2, 3


# Strict argparse types (this module imports no Django and no app, so not generation.fields' cli_int/cli_float;
# the same rules): ``type=int`` takes "٣" and "1_000", ``type=float`` takes "nan", "inf" and "1e999".


def _shown(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def _bounds(minimum, maximum) -> str:
    if minimum is not None and maximum is not None:
        return f"{_shown(minimum)} to {_shown(maximum)}"
    return f"at least {_shown(minimum)}" if minimum is not None else f"at most {_shown(maximum)}"


def int_arg(*, minimum: int | None = 0, maximum: int | None = None, max_digits: int = 18) -> Callable[[str], int]:
    """A whole number in ASCII digits (an optional leading ``-``) within the range."""

    def parse(text: str) -> int:
        if not re.fullmatch(rf"-?[0-9]{{1,{max_digits}}}", text):
            raise argparse.ArgumentTypeError(
                f"{text[:40]!r} is not a whole number written in digits 0-9 (at most {max_digits})")
        number = int(text)
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            raise argparse.ArgumentTypeError(f"{number} is out of range ({_bounds(minimum, maximum)})")
        return number

    parse.__name__ = "integer"  # argparse names the type in its message
    return parse


def float_arg(*, minimum: float | None = None, maximum: float | None = None) -> Callable[[str], float]:
    """A finite decimal number (digits, an optional point and fraction) within the range."""

    def parse(text: str) -> float:
        if not re.fullmatch(r"-?[0-9]{1,15}(\.[0-9]{1,15})?", text):
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a decimal number such as 0.5 or 20")
        number = float(text)
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            raise argparse.ArgumentTypeError(f"{_shown(number)} is out of range ({_bounds(minimum, maximum)})")
        return number

    parse.__name__ = "number"
    return parse


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
    parser.add_argument("--time-slice", type=float_arg(minimum=0.001, maximum=10**9), default=None,
                        help="pause at a checkpoint before this many s")
    parser.add_argument("--stop-after", type=int_arg(minimum=1), default=None, help="pause after this many steps")
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
