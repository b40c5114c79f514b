"""Print the CCIP difference of two images, so an admin can check a CCIP install.

    python manage.py ccip_difference --model-dir var/scorers/ccip A.png B.png

The last line of the output is the difference alone.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from PIL import Image as PILImage

from generation.scoring.files import ScoringError, kind_folder


class Command(BaseCommand):
    help = "Print the CCIP difference between two images (last line: the difference)."

    def add_arguments(self, parser):
        parser.add_argument("--model-dir", default=None,
                            help="CCIP folder in the deepghs layout (default: SCORERS_DIR/ccip)")
        parser.add_argument("image_a")
        parser.add_argument("image_b")

    def handle(self, *args, **options):
        from generation.scoring.ccip import CcipModel

        folder = Path(options["model_dir"]) if options["model_dir"] else kind_folder("ccip")
        images = []
        for name in (options["image_a"], options["image_b"]):
            try:
                with PILImage.open(name) as im:
                    im.load()
                    images.append(im.copy())
            except (OSError, ValueError) as exc:
                raise CommandError(f"cannot read image {name}: {exc}") from None
        try:
            model = CcipModel(folder, device="cpu")
            difference = model.difference(*images)
        except ScoringError as exc:
            raise CommandError(str(exc)) from None
        verdict = "same character" if model.same(difference) else "different characters"
        self.stdout.write(f"model: {folder}")
        self.stdout.write(f"threshold: {model.threshold:.6f} ({verdict})")
        self.stdout.write(f"{difference:.6f}")
