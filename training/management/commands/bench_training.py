"""``manage.py bench_training --method dpo|sft``: the speed of the LoRA trainers' step on the tiny models, against
a straight re-implementation of the reference step on the same batch (training.trainers.bench). Prints one JSON
line: ``{"method", "steps_per_s", "s_per_step", "reference_s_per_step", "slowdown_ratio", "loss",
"reference_loss", "loss_abs_diff", "peak_rss_mb", ...}``; exits non-zero when the losses differ by more than 1e-5.
``--method dpo --measure-kto --steps 30`` measures the both-bad (Diffusion-KTO-style) term instead
(training.trainers.bench.kto_effect); ``--method dpo --measure-learning --steps 60`` the held-out implicit accuracy
of a DPO LoRA trained on judged labels against the same run on reversed labels (training.trainers.bench.dpo_learning).

``--method reward`` is the reward model's benchmark (training.benchmarks.reward): tiny-model images voted by the
fixed synthetic judge (warmth) through the real poll and vote services, the reward model trained on the counted
duels, and one JSON line ``{"pairs", "train_s", "pairs_per_s", "heldout_acc", "heldout_ci_low", "peak_rss_mb",
...}`` (95% Wilson interval) with the shuffled-label control (``control_acc``, ``control_ci_low/high``, pooled over
``--control-relabelings`` coin-flip relabelings; leave it out with ``--no-control``). It writes models, prompts,
images, polls and votes, so it runs in a throwaway database: this command starts itself again on a fresh embedded SQLite file in a temporary folder (migrated first;
media, tasks and cache there too, nothing reaches the configured database, broker or scorers) and relays its
line; ``--current-database`` runs it in the configured database instead (tests, whose database is throwaway).
It exits non-zero when ``heldout_ci_low`` is not above one half."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from generation.fields import cli_float, cli_int
from generation.sampling import MAX_SEED, MAX_SIDE


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


def _reward_benchmark(options, tiny):
    from training.benchmarks import reward

    with tempfile.TemporaryDirectory(prefix="bench-reward-clip-") as tmp:
        clip = options["open_clip_dir"]
        if not clip:
            from io import StringIO

            from django.core.management import call_command

            call_command("make_tiny_scorers", tmp, stdout=StringIO())
            clip = str(Path(tmp) / "open_clip")
        return reward.run(tiny=tiny, open_clip_dir=clip, pairs=options["pairs"], seed=options["seed"],
                          size=options["image_size"], heldout_fraction=options["heldout_fraction"],
                          control=0 if options["no_control"] else options["control_relabelings"])


def _in_throwaway_database(argv: list[str]) -> dict:
    """Run ``manage.py bench_training ARGV --current-database`` on a fresh embedded SQLite database (migrated
    first) in a temporary folder, with eager tasks, a local cache and media there; its JSON line."""
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
    with tempfile.TemporaryDirectory(prefix="bench-reward-db-") as tmp:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", "REDIS_URL": "",
               "CELERY_BROKER_URL": "memory://", "CELERY_TASK_ALWAYS_EAGER": "1", "ARENA_VAR_DIR": str(Path(tmp) / "var"),
               "MEDIA_ROOT": str(Path(tmp) / "media"), "ARENA_SCORERS_DIR": str(Path(tmp) / "no-scorers"),
               "RATELIMIT_ENABLE": "0", "VOTER_DAILY_CAP": "0"}
        migrated = subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        if migrated.returncode:
            raise CommandError(f"cannot migrate the throwaway database: {migrated.stdout[-2000:]}")
        done = subprocess.run([*manage, "bench_training", *argv, "--current-database"], env=env,
                              stdout=subprocess.PIPE, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode not in (0, 1) or not lines:
            raise CommandError(f"the benchmark's process failed (exit {done.returncode}); its output: {done.stdout[-2000:]}")
        return json.loads(lines[-1])


# method -> function(options, tiny models) -> the JSON line's dict
BENCHMARKS = {"dpo": _step_benchmark, "sft": _step_benchmark, "reward": _reward_benchmark}


class Command(BaseCommand):
    help = "Benchmark a trainer's step on the tiny models against the reference step (one JSON line)."

    def add_arguments(self, parser):
        parser.add_argument("--method", required=True, choices=["dpo", "sft", "reward"])
        parser.add_argument("--prediction-type", default="eps", choices=["eps", "v"])
        parser.add_argument("--steps", type=cli_int(minimum=1), default=10, help="timed steps per round")
        parser.add_argument("--repeats", type=cli_int(minimum=1), default=3, help="rounds (medians are reported)")
        parser.add_argument("--batch", type=cli_int(minimum=1, maximum=256), default=2)
        parser.add_argument("--resolution", type=cli_int(minimum=64, maximum=MAX_SIDE), default=64,
                            help="a multiple of 64 (the trainers' rule)")
        parser.add_argument("--seed", type=cli_int(minimum=0, maximum=MAX_SEED), default=0)
        parser.add_argument("--tiny-dir", default=None, help="default: TINY_MODELS_DIR (built if missing)")
        parser.add_argument("--measure-kto", action="store_true",
                            help="with --method dpo: measure the both-bad KTO term instead (--steps training steps)")
        parser.add_argument("--kto-weight", type=cli_float(minimum=0, maximum=1000), default=1.0)
        parser.add_argument("--measure-learning", action="store_true",
                            help="with --method dpo: held-out implicit accuracy after --steps steps, judged labels "
                                 "vs reversed ones (a measurement, not a speed benchmark)")
        # the reward options: malformed numbers stop here, the limits below give their own messages
        parser.add_argument("--pairs", type=cli_int(minimum=1), default=100, help="with --method reward: duels to vote")
        parser.add_argument("--image-size", type=cli_int(minimum=1, maximum=MAX_SIDE), default=256, help="with --method reward: generated image side")
        parser.add_argument("--heldout-fraction", type=cli_float(minimum=0, maximum=1), default=0.3,
                            help="with --method reward: share of the polls held out")
        parser.add_argument("--open-clip-dir", default=None,
                            help="with --method reward: the frozen open_clip model (default: the tiny one, seed 0)")
        parser.add_argument("--no-control", action="store_true", help="with --method reward: skip the shuffled-label control")
        parser.add_argument("--control-relabelings", type=cli_int(minimum=0, maximum=10_000), default=20,
                            help="with --method reward: coin-flip relabelings the control pools")
        parser.add_argument("--current-database", action="store_true",
                            help="with --method reward: write to the configured database instead of a throwaway one "
                                 "(for tests, whose database is throwaway already)")

    def handle(self, *args, **options):
        run = BENCHMARKS.get(options["method"])
        if options["method"] == "dpo" and options["measure_kto"]:
            run = _kto_measurement
        elif options["method"] == "dpo" and options["measure_learning"]:
            run = _learning_measurement
        if options["steps"] < 1 or options["repeats"] < 1 or options["batch"] < 1:
            raise CommandError("--steps, --repeats and --batch must be at least 1")
        if options["resolution"] < 64 or options["resolution"] % 64:
            raise CommandError(f"--resolution must be a multiple of 64, not {options['resolution']}")
        if options["method"] == "reward":
            if options["pairs"] < 10:
                raise CommandError("--pairs must be at least 10")
            if options["control_relabelings"] < 1:
                raise CommandError("--control-relabelings must be at least 1 (--no-control leaves the control out)")
            if not 0 < options["heldout_fraction"] < 1:
                raise CommandError("--heldout-fraction must be between 0 and 1")
            if options["image_size"] < 256 or options["image_size"] % 64:
                raise CommandError("--image-size must be a multiple of 64, at least 256 (the generation minimum)")
            if options["open_clip_dir"] and not Path(options["open_clip_dir"]).is_dir():
                raise CommandError(f"--open-clip-dir {options['open_clip_dir']}: no such folder")
        from generation.tiny import make_tiny_models
        from training.trainers.errors import TrainingError

        tiny_dir = Path(options["tiny_dir"] or Path(settings.TINY_MODELS_DIR))
        tiny = make_tiny_models(tiny_dir)
        if options["method"] == "reward" and not options["current_database"]:
            argv = ["--method", "reward", "--seed", str(options["seed"]), "--pairs", str(options["pairs"]),
                    "--heldout-fraction", str(options["heldout_fraction"]), "--image-size", str(options["image_size"]),
                    "--tiny-dir", str(tiny_dir.resolve())]
            if options["open_clip_dir"]:
                argv += ["--open-clip-dir", str(Path(options["open_clip_dir"]).resolve())]
            if options["no_control"]:
                argv.append("--no-control")
            argv += ["--control-relabelings", str(options["control_relabelings"])]
            line = _in_throwaway_database(argv)
        else:
            try:
                line = run(options, tiny)
            except TrainingError as exc:
                raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(line, sort_keys=True))
        if options["method"] == "reward" and not (line.get("heldout_ci_low") or 0) > 0.5:
            raise CommandError(f"the reward model does not agree with the judge above chance on held-out pairs: "
                               f"heldout_ci_low {line.get('heldout_ci_low')}")
        if not line.get("loss_equal_1e-5", True):
            raise CommandError(f"our loss {line['loss']} differs from the reference's {line['reference_loss']}")
