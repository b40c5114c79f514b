"""Write tiny scorer files for the demo and the tests, in the layout real scorers use:

    DIR/ccip/model_feat.onnx, model_metrics.onnx, metrics.json
    DIR/open_clip/open_clip_config.json, open_clip_model.safetensors, aesthetic_mlp.safetensors

Random weights (deterministic for a seed): the machinery is real, the scores mean nothing.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from generation.fields import cli_int
from generation.sampling import MAX_SEED


def tiny_scorers_write(root: Path | str, *, seed: int = 0, parts: tuple[str, ...] = ("ccip", "open_clip")) -> Path:
    """Write the tiny scorers' ``parts`` under ``root`` (overwriting)."""
    from generation.scoring.aesthetic import tiny_aesthetic_mlp_write
    from generation.scoring.ccip import tiny_ccip_write
    from generation.scoring.openclip import TINY_OPEN_CLIP_CONFIG, tiny_open_clip_write

    root = Path(root)
    if "ccip" in parts:
        tiny_ccip_write(root / "ccip", seed=seed)
    if "open_clip" in parts:
        tiny_open_clip_write(root / "open_clip", seed=seed)
        tiny_aesthetic_mlp_write(root / "open_clip" / "aesthetic_mlp.safetensors",
                                 embed_dim=TINY_OPEN_CLIP_CONFIG["model_cfg"]["embed_dim"], seed=seed)
    return root


class Command(BaseCommand):
    help = "Write a tiny CCIP-shaped ONNX pair, a tiny open_clip model and an aesthetic MLP to DIR."

    def add_arguments(self, parser):
        parser.add_argument("dir", nargs="?", default=None, help="target folder (default settings.SCORERS_DIR)")
        parser.add_argument("--seed", type=cli_int(minimum=0, maximum=MAX_SEED), default=0)
        parser.add_argument("--force", action="store_true",
                            help="rewrite folders that are already there (default: leave them, real or tiny)")

    def handle(self, *args, **options):
        root = Path(options["dir"]) if options["dir"] else Path(settings.SCORERS_DIR)
        parts = []
        for part in ("ccip", "open_clip"):
            if (root / part).exists() and not options["force"]:
                self.stdout.write(f"{root / part} already exists: left as it is (--force rewrites it)")
            else:
                parts.append(part)
        if parts:
            tiny_scorers_write(root, seed=options["seed"], parts=tuple(parts))
            self.stdout.write(f"wrote tiny {' and '.join(parts)} scorer files to {root}")
