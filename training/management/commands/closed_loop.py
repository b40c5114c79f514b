"""``manage.py closed_loop --method dpo|sft [--shuffle-labels | --reverse-labels] --seed 0``: the loop votes → LoRA
→ new variant → child against parent, on the pre-trained tiny models, printing one JSON line
``{"pairs", "train_steps", "train_s", "implicit_acc", "child_win_rate", "ci_low", "ci_high", "heldout_polls",
"mse_ratio", "lora_file", ...}`` (95% Wilson interval over held-out polls; ``mse_ratio`` = child / parent held-out
denoising MSE, > 1.05 would mean the child degenerated).

The loop (``training.trainers.closed_loop``): the parent draws two images per training prompt for DPO (a duel),
eight for SFT (a free-for-all poll), each with its own seed; the fixed synthetic judge (``training.trainers.judge``:
warmth, mean R - B), voting as a noisy Bradley-Terry voter (``judge.VOTER_TEMPERATURE``: it sides with the warmer
of two of the parent's pictures about four times in five, so a drift no voter would see is a coin flip), labels
each duel, or draws each poll's winner (Plackett-Luce), which is paired with each other image (or the control
relabels them: ``--shuffle-labels`` permutes the labels across duels / makes a seeded draw the winner,
``--reverse-labels`` swaps them / makes the voter of the opposite taste pick); the pairs become the trainers'
Parquet dataset; the DPO (or supervised-on-winners) LoRA trains on it; the child and the parent then draw
held-out prompts at held-out seeds (disjoint from every training seed; one seed per poll, shared by both models
so only the LoRA differs) and the same voter votes child vs parent.

Then the child is enrolled in the arena (the configured database: the embedded one under ``make run``) through
the training app's one registration path (``training.services.variant_enroll``: a fine-tune variant of the tiny
parent -- registered first, once, as "Tiny closed-loop parent (eps|v)" -- with its LoRA and card, and the
generation job that renders it on the parent's fixed prompts, so the two meet in fixed-prompt duels);
``--no-enrol`` leaves the arena out.

What the results mean (v parent, 100 steps, 256 held-out polls, seeds 0, 1, 2; the note of the issue has the
JSON lines): DPO's child beats its parent, 0.617 [0.556, 0.675], 0.602 [0.541, 0.660], 0.723 [0.665, 0.774], with
its held-out MSE within 3.5% of the parent's; its shuffled control contains one half at every seed (0.531, 0.527,
0.465); its reversed control loses (0.402, 0.293; 0.457 [0.397, 0.518] at seed 0). SFT's child beats its parent
too (0.598, 0.586, 0.633, each interval above one half), but so does SFT's shuffled control at two seeds of three
(0.586 [0.525, 0.645], 0.563 [0.501, 0.622], 0.496): supervised training on the parent's own pictures moves the
child whatever the labels (what the tiny VAE's round trip teaches it; DPO's contrast cancels that), so SFT's win
over its parent is not the votes' alone. An SFT run therefore also trains that sibling (the same polls with the
shuffled labels) and prints ``sibling_win_rate``: the child against it on the held-out polls, where the drift is
on both sides -- 0.602 [0.541, 0.660], 0.625 [0.564, 0.682], 0.676 [0.616, 0.730] (``--no-sibling`` leaves it
out). SFT draws eight images per poll because a duel's winner is too weak a selection to show through; its
defaults are 128 polls of eight, DPO's 64 duels, both 256 held-out polls
(``training.trainers.closed_loop.METHOD_DEFAULTS``). ``--loop-settings '{"judge_temperature": 0}'`` is the
deterministic judge, which sees any drift (its shuffled controls beat their parents in up to 67% of polls).

Where this differs from a vote-for-vote arena loop: the training pairs are the parent's own images at two seeds
(what DPO needs to move the parent), which the arena's polls -- always two different models at one seed -- do not
make, so the judge labels them directly instead of through the vote service; ``bench_training --method reward``
is the benchmark whose votes go through ``poll_create`` and ``vote_cast``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from generation.fields import cli_int
from generation.sampling import MAX_SEED


class Command(BaseCommand):
    help = "The closed loop on the tiny models: judge's votes -> LoRA -> child vs parent (one JSON line)."

    def add_arguments(self, parser):
        parser.add_argument("--method", required=True, choices=["dpo", "sft"])
        labels = parser.add_mutually_exclusive_group()
        labels.add_argument("--shuffle-labels", action="store_true", help="control: labels permuted across polls")
        labels.add_argument("--reverse-labels", action="store_true", help="control: every label swapped")
        parser.add_argument("--seed", type=cli_int(minimum=0, maximum=MAX_SEED), default=0, help="the run's seed: prompts, image seeds, training")
        parser.add_argument("--prediction-type", default="v", choices=["eps", "v"], help="the parent's kind (v: where LoRA training goes wrong most)")
        # counts: malformed ones stop here; 0 reaches _settings, which says "--pairs must be at least 1"
        parser.add_argument("--pairs", type=cli_int(minimum=0), default=None, help="training polls (default: 64 duels for DPO, 128 eight-image polls for SFT)")
        parser.add_argument("--heldout-polls", type=cli_int(minimum=0), default=None, help="held-out polls (default: 64 for DPO, 128 for SFT)")
        parser.add_argument("--steps", type=cli_int(minimum=0), default=None, help="training steps (default: the loop's)")
        parser.add_argument("--loop-settings", default="{}", help="JSON of more LoopSettings fields (training.trainers.closed_loop)")
        parser.add_argument("--tiny-dir", default=None, help="default: TINY_MODELS_DIR (built if missing)")
        parser.add_argument("--work-dir", default=None, help="where images, dataset and LoRA go (default: a new "
                                                             "folder under TRAINING_DIR/closed-loop)")
        parser.add_argument("--no-enrol", action="store_true", help="leave the arena out (the loop only)")
        parser.add_argument("--no-sibling", action="store_true",
                            help="SFT: leave out the child's match against its shuffled-label sibling")

    def handle(self, *args, **options):
        from training.trainers.closed_loop import LoopSettings, run_closed_loop
        from training.trainers.config import ParentModel
        from training.trainers.errors import TrainingError

        loop = self._settings(options, LoopSettings)
        from generation.tiny import make_tiny_models

        tiny = make_tiny_models(Path(options["tiny_dir"] or settings.TINY_MODELS_DIR))
        kind = options["prediction_type"]
        parent = ParentModel(tiny.v_dir if kind == "v" else tiny.eps_dir, kind)
        work = Path(options["work_dir"] or tempfile.mkdtemp(prefix=f"{loop.method}-{loop.labels}-{loop.seed}-",
                                                            dir=_closed_loop_dir()))
        try:
            line = run_closed_loop(loop, parent, work, log=lambda msg: self.stderr.write(msg))
        except TrainingError as exc:
            raise CommandError(str(exc)) from None
        if not options["no_enrol"]:
            line["child_variant"] = enrol_child(line, tiny, kind)
        self.stdout.write(json.dumps(line, sort_keys=True))

    @staticmethod
    def _settings(options, LoopSettings):
        try:
            extra = json.loads(options["loop_settings"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--loop-settings is not JSON: {exc}") from None
        if not isinstance(extra, dict):
            raise CommandError("--loop-settings must be a JSON object of LoopSettings fields")
        labels = "shuffled" if options["shuffle_labels"] else "reversed" if options["reverse_labels"] else "true"
        given = {"pairs": options["pairs"], "heldout_polls": options["heldout_polls"], "train_steps": options["steps"]}
        flags = {"pairs": "--pairs", "heldout_polls": "--heldout-polls", "train_steps": "--steps"}
        for name, value in given.items():
            if value is not None and value < 1:
                raise CommandError(f"{flags[name]} must be at least 1")
        fields = {**extra, **{k: v for k, v in given.items() if v is not None},
                  "method": options["method"], "labels": labels, "seed": options["seed"]}
        if options["no_sibling"]:
            fields["sibling"] = False
        try:
            return LoopSettings(**fields)
        except TypeError as exc:
            raise CommandError(f"--loop-settings: {exc}") from None


def enrol_child(line: dict, tiny, kind: str) -> dict:
    """The loop's LoRA as a fine-tune of the tiny parent (registered on first use), through the training app's
    registration path; ``{"id", "name", "parent", "job"}``."""
    from django.core.exceptions import ValidationError

    from generation import services as generation
    from generation.models import ModelVariant
    from training.services import variant_enroll

    name = f"Tiny closed-loop parent ({kind})"
    parent = ModelVariant.objects.filter(name=name).first()
    try:
        if parent is None:
            parent = generation.variant_register(
                path=str(tiny.v_file if kind == "v" else tiny.eps_file), name=name, kind=ModelVariant.Kind.BASE,
                prediction="v" if kind == "v" else None, family="Tiny (closed loop)",
                description="the closed loop's parent: the pre-trained tiny SDXL-shaped model")
        card = {"method": line["method"], "labels": line["labels"], "seed": line["seed"], "steps": line["train_steps"],
                "pairs": line["pairs"], "child_win_rate": line["child_win_rate"], "ci": [line["ci_low"], line["ci_high"]],
                "mse_ratio": line["mse_ratio"], "judge": "warmth (training.trainers.judge)"}
        child, job = variant_enroll(parent=parent, lora_path=line["lora_file"], card=card,
                                    name=f"{name} + {line['method']} ({line['labels']} labels, seed {line['seed']})")
    except ValidationError as exc:
        raise CommandError(f"the child could not be enrolled: {' '.join(exc.messages)}") from None
    return {"id": child.id, "name": child.name, "parent": parent.id, "job": job.id if job else None}


def _closed_loop_dir() -> Path:
    path = Path(settings.TRAINING_DIR) / "closed-loop"
    path.mkdir(parents=True, exist_ok=True)
    return path
