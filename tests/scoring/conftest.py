import io
import shutil

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image as PILImage


@pytest.fixture(scope="session")
def tiny_scorer_root(tmp_path_factory):
    """Tiny scorer files, built once per session (real ONNX pair, real open_clip model, MLP weights)."""
    from generation.management.commands.make_tiny_scorers import tiny_scorers_write

    root = tmp_path_factory.mktemp("tiny_scorers")
    tiny_scorers_write(root, seed=0)
    return root


@pytest.fixture
def scorers(settings, tiny_scorer_root, tmp_path):
    """A private copy of the tiny scorers, installed as settings.SCORERS_DIR."""
    root = tmp_path / "scorers"
    shutil.copytree(tiny_scorer_root, root)
    settings.SCORERS_DIR = root
    return root


@pytest.fixture
def no_scorers(settings, tmp_path):
    settings.SCORERS_DIR = tmp_path / "empty-scorers"
    return settings.SCORERS_DIR


def png_bytes(image: PILImage.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def noise(seed: int, size=(48, 64), tint=(0, 0, 0)) -> PILImage.Image:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 200, (size[1], size[0], 3)).astype(np.int32) + np.asarray(tint, dtype=np.int32)
    return PILImage.fromarray(np.clip(data, 0, 255).astype(np.uint8))


def solid(color, size=(40, 40)) -> PILImage.Image:
    return PILImage.new("RGB", size, color)


class World:
    """Database objects for the scoring tests."""

    def __init__(self):
        from generation.models import ModelVariant

        self.ModelVariant = ModelVariant
        self._seed = 0

    def variant(self, name):
        return self.ModelVariant.objects.create(name=name)

    def character(self, name, references=()):
        from generation.models import Character, CharacterReference

        character = Character.objects.create(name=name, tags=name.lower().replace(" ", "_"))
        for pic in references:
            ref = CharacterReference(character=character)
            ref.image.save("ref.png", ContentFile(png_bytes(pic)), save=True)
        return character

    def prompt(self, text, character=None):
        from generation.models import Prompt

        return Prompt.objects.create(text=text, character=character)

    def image(self, variant, prompt, picture, settings_key="k1", seed=1):
        from generation.models import Image

        image = Image(variant=variant, prompt=prompt, seed=seed, sampler="Euler a", steps=20, cfg_scale=6.0,
                      width=picture.width, height=picture.height, settings_key=settings_key)
        data = png_bytes(picture)
        image.file.save("img.png", ContentFile(data), save=False)
        image.voter_file.save("v.png", ContentFile(data), save=False)
        image.save()
        return image


@pytest.fixture
def world(db):
    return World()
