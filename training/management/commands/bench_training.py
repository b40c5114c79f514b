"""``manage.py bench_training --method dpo|sft``: the speed of the LoRA trainers' step on the tiny models, against
a straight re-implementation of the reference step on the same batch (training.trainers.bench). Prints one JSON
line: ``{"method", "steps_per_s", "s_per_step", "reference_s_per_step", "slowdown_ratio", "loss",
"reference_loss", "loss_abs_diff", "peak_rss_mb", ...}``; exits non-zero when the losses differ by more than 1e-5.
``--method dpo --measure-kto --steps 30`` measures the both-bad (Diffusion-KTO-style) term instead
(training.trainers.bench.kto_effect); ``--method dpo --measure-learning --steps 60`` the held-out implicit accuracy
of a DPO LoRA trained on judged labels against the same run on reversed labels (training.trainers.bench.dpo_learning).

``--method reward`` is the reward model's benchmark of the training-runs issue: it makes its preference set with
the tiny models and the synthetic judge voting through the real vote service, so it belongs with the Django side
of training; until that lands it says so and exits (see ``BENCHMARKS``)."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def _step_benchmark(options, tiny):
    from training.trainers.bench import bench
    from training.trainers.config import ParentModel

    kind = options["prediction_type"]
    parent = ParentModel(tiny.v_dir if kind == "v" else tiny.eps_dir, kind)
    return bench(options["method"], parent, steps=options["steps"], repeats=options["repeats"],
                 batch=options["batch"], resolution=options["resolution"], seed=options["seed"])


def _kto_measurement(options, tiny):
    from training.trainers.bench import kto_effect
    from training.trainers.config import ParentModel

    kind = options["prediction_type"]
    parent = ParentModel(tiny.v_dir if kind == "v" else tiny.eps_dir, kind)
    return kto_effect(parent, steps=options["steps"], kto_weight=options["kto_weight"], seed=options["seed"],
                      resolution=options["resolution"])


def _learning_measurement(options, tiny):
    from training.trainers.bench import dpo_learning
    from training.trainers.config import ParentModel

    kind = options["prediction_type"]
    parent = ParentModel(tiny.v_dir if kind == "v" else tiny.eps_dir, kind)
    return dpo_learning(parent, steps=options["steps"], seed=options["seed"], resolution=options["resolution"])


# method -> function(options, tiny models) -> the JSON line's dict; the reward benchmark plugs in here
BENCHMARKS = {"dpo": _step_benchmark, "sft": _step_benchmark}


class Command(BaseCommand):
    help = "Benchmark a trainer's step on the tiny models against the reference step (one JSON line)."

    def add_arguments(self, parser):
        parser.add_argument("--method", required=True, choices=["dpo", "sft", "reward"])
        parser.add_argument("--prediction-type", default="eps", choices=["eps", "v"])
        parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
        parser.add_argument("--repeats", type=int, default=3, help="rounds (medians are reported)")
        parser.add_argument("--batch", type=int, default=2)
        parser.add_argument("--resolution", type=int, default=64)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--tiny-dir", default=None, help="default: MODELS_DIR/tiny (built if missing)")
        parser.add_argument("--measure-kto", action="store_true",
                            help="with --method dpo: measure the both-bad KTO term instead (--steps training steps)")
        parser.add_argument("--kto-weight", type=float, default=1.0)
        parser.add_argument("--measure-learning", action="store_true",
                            help="with --method dpo: held-out implicit accuracy after --steps steps, judged labels "
                                 "vs reversed ones (a measurement, not a speed benchmark)")

    def handle(self, *args, **options):
        run = BENCHMARKS.get(options["method"])
        if options["method"] == "dpo" and options["measure_kto"]:
            run = _kto_measurement
        elif options["method"] == "dpo" and options["measure_learning"]:
            run = _learning_measurement
        if run is None:
            raise CommandError(f"--method {options['method']}: this benchmark votes through the vote service and "
                               "comes with the training app's Django side; available: " + ", ".join(BENCHMARKS))
        if options["steps"] < 1 or options["repeats"] < 1 or options["batch"] < 1:
            raise CommandError("--steps, --repeats and --batch must be at least 1")
        from generation.tiny import make_tiny_models
        from training.trainers.errors import TrainingError

        tiny = make_tiny_models(Path(options["tiny_dir"] or Path(settings.MODELS_DIR) / "tiny"))
        try:
            line = run(options, tiny)
        except TrainingError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(line, sort_keys=True))
        if not line.get("loss_equal_1e-5", True):
            raise CommandError(f"our loss {line['loss']} differs from the reference's {line['reference_loss']}")
