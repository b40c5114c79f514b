"""score_images: backfill, --missing-only, recompute on new scorer files, clear errors and no partial writes."""

import numpy as np
import onnx
import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from generation.scoring.ccip import CcipModel, tiny_ccip_write
from generation.scoring.files import files_hash, scorer_files
from generation.scoring.models import CcipFeature, ImageScore
from generation.scoring.openclip import OpenClipModel
from generation.scoring.services import scores_compute

from .conftest import noise, solid


@pytest.fixture
def scene(world):
    """Two models, one character with three references, a character prompt and a plain prompt."""
    a, b = world.variant("model A"), world.variant("model B")
    char = world.character("Hakurei Reimu", references=[noise(1), noise(2, tint=(40, 0, 0)), solid((240, 20, 20))])
    char_prompt = world.prompt("1girl, hakurei reimu, masterpiece BREAK shrine", character=char)
    plain_prompt = world.prompt("scenery, city lights, night sky")
    images = {
        "a_char": world.image(a, char_prompt, noise(10)),
        "b_char": world.image(b, char_prompt, solid((10, 240, 10))),
        "a_plain": world.image(a, plain_prompt, noise(11)),
        "b_plain": world.image(b, plain_prompt, solid((0, 0, 200))),
    }
    return {"a": a, "b": b, "character": char, "images": images}


def run(*args):
    call_command("score_images", *args)


def scores(kind):
    return {s.image_id: s for s in ImageScore.objects.filter(kind=kind)}


def test_backfill_scores_every_image_with_every_installed_judge(scorers, scene, capsys):
    run()
    imgs = scene["images"]
    ccip, aesthetic, alignment = scores("ccip"), scores("aesthetic"), scores("alignment")
    assert set(ccip) == {imgs["a_char"].id, imgs["b_char"].id}  # only prompts that name a character with references
    assert set(aesthetic) == set(alignment) == {i.id for i in imgs.values()}

    # CCIP: per image, the difference to each reference, their mean and the same-character ratio
    model = CcipModel(scorers / "ccip")
    refs = list(scene["character"].references.order_by("id"))
    for key in ("a_char", "b_char"):
        image = imgs[key]
        feats = model.features([PILImage.open(image.file.path)] + [PILImage.open(r.image.path) for r in refs])
        diffs = model.differences(feats)[0, 1:]
        row = ccip[image.id]
        assert row.references == 3
        assert row.value == pytest.approx(float(np.mean(diffs)), abs=1e-5)
        assert row.same_ratio == pytest.approx(np.mean(diffs <= model.threshold))
        assert row.details["differences"] == {str(r.id): pytest.approx(float(d), abs=1e-5) for r, d in zip(refs, diffs)}
        assert row.scorer_hash == files_hash(scorer_files("ccip", scorers).files)

    # features are cached: one per image and per reference
    assert CcipFeature.objects.filter(image__isnull=False).count() == 2
    assert CcipFeature.objects.filter(reference__isnull=False).count() == 3

    # alignment is 100 × cosine(prompt, image) of the same open_clip model, clipped at 0
    clip = OpenClipModel(scorers / "open_clip")
    image = imgs["a_plain"]
    emb = clip.image_embeddings([PILImage.open(image.file.path)])[0]
    txt = clip.text_embeddings([image.prompt.text])[0]
    assert alignment[image.id].value == pytest.approx(max(100 * float(emb @ txt), 0.0), abs=1e-3)
    assert all(s.value >= 0 for s in alignment.values())
    assert aesthetic[image.id].scorer_hash != alignment[image.id].scorer_hash  # the MLP file is part of its hash
    assert "scored 4 images" in capsys.readouterr().out


def test_missing_only_scores_new_images_and_leaves_the_rest(scorers, scene, world):
    run()
    before = {(s.image_id, s.kind): s.computed_at for s in ImageScore.objects.all()}
    features_before = CcipFeature.objects.count()
    new = world.image(scene["a"], scene["images"]["b_char"].prompt, noise(99), settings_key="k2", seed=2)
    run("--missing-only")
    after = {(s.image_id, s.kind): s.computed_at for s in ImageScore.objects.all()}
    assert set(after) - set(before) == {(new.id, "ccip"), (new.id, "aesthetic"), (new.id, "alignment")}
    assert all(after[key] == stamp for key, stamp in before.items())
    assert CcipFeature.objects.count() == features_before + 1  # only the new image's features; references cached


def test_model_option_limits_the_backfill_to_one_variant(scorers, scene):
    run("--model", "model B", "--scorer", "aesthetic")
    assert set(scores("aesthetic")) == {scene["images"]["b_char"].id, scene["images"]["b_plain"].id}
    assert not scores("ccip") and not scores("alignment")
    with pytest.raises(CommandError, match="no model variant named 'nope'"):
        run("--model", "nope")


def test_a_new_scorer_file_recomputes_on_missing_only(scorers, scene):
    run()
    old = scores("ccip")
    old_aesthetic = {i: (s.value, s.computed_at) for i, s in scores("aesthetic").items()}
    tiny_ccip_write(scorers / "ccip", seed=7)  # a different CCIP model in place
    new_hash = files_hash(scorer_files("ccip", scorers).files)
    assert new_hash != next(iter(old.values())).scorer_hash
    run("--missing-only")
    new = scores("ccip")
    assert set(new) == set(old)
    assert {s.scorer_hash for s in new.values()} == {new_hash}
    assert any(abs(new[i].value - old[i].value) > 1e-6 for i in new)
    # the other judges' files did not change: their scores stay as they were
    assert {i: (s.value, s.computed_at) for i, s in scores("aesthetic").items()} == old_aesthetic
    # features are cached per scorer version
    assert CcipFeature.objects.filter(scorer_hash=new_hash).count() == 5


def test_a_new_reference_recomputes_that_characters_ccip_scores(scorers, scene):
    from django.core.files.base import ContentFile

    from generation.models import CharacterReference

    from .conftest import png_bytes

    run()
    ref = CharacterReference(character=scene["character"])
    ref.image.save("r.png", ContentFile(png_bytes(solid((0, 0, 0)))), save=True)
    run("--missing-only", "--scorer", "ccip")
    assert {s.references for s in scores("ccip").values()} == {4}


def test_missing_scorer_files_stop_the_command_without_writing(scorers, scene):
    (scorers / "ccip" / "model_metrics.onnx").unlink()
    with pytest.raises(CommandError, match=r"lacks model_metrics.onnx"):
        run()
    assert ImageScore.objects.count() == 0 and CcipFeature.objects.count() == 0


def test_broken_scorer_file_stops_the_command_without_writing(scorers, scene):
    (scorers / "open_clip" / "open_clip_model.safetensors").write_bytes(b"not weights")
    with pytest.raises(CommandError, match="cannot load open_clip_model.safetensors"):
        run()
    assert ImageScore.objects.count() == 0 and CcipFeature.objects.count() == 0


def test_no_scorer_installed_is_an_error(no_scorers, scene):
    with pytest.raises(CommandError, match="no scorer is installed"):
        run()


def test_a_scorer_asked_for_by_name_must_be_installed(scorers, scene):
    import shutil

    shutil.rmtree(scorers / "ccip")
    with pytest.raises(CommandError, match="CCIP is not installed"):
        run("--scorer", "ccip")
    run()  # by default a missing scorer is skipped with a note and the others run
    assert not scores("ccip") and len(scores("aesthetic")) == 4


def test_a_scorer_that_fails_while_running_writes_nothing_of_its_batch(scorers, scene):
    path = scorers / "ccip" / "model_metrics.onnx"
    metrics = onnx.load(str(path))
    metrics.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 16  # loads, but refuses 32-dim features
    onnx.save(metrics, str(path))
    with pytest.raises(CommandError, match="metrics model .* failed"):
        run("--batch-size", "100")
    assert ImageScore.objects.count() == 0 and CcipFeature.objects.count() == 0


def test_an_unreadable_image_is_reported_and_the_others_are_scored(scorers, scene, capsys):
    broken = scene["images"]["a_plain"]
    with open(broken.file.path, "wb") as fh:
        fh.write(b"\x89PNG truncated")
    with pytest.raises(CommandError, match="1 file"):
        run()
    assert broken.id not in scores("aesthetic") and len(scores("aesthetic")) == 3
    assert f"image {broken.id}: cannot read" in capsys.readouterr().err


def test_scoring_service_reports_up_to_date_images(scorers, scene):
    scores_compute()
    report = scores_compute(missing_only=True)
    assert report.scored == {"ccip": 0, "aesthetic": 0, "alignment": 0, "reward": 0}
    assert report.up_to_date == {"ccip": 2, "aesthetic": 4, "alignment": 4, "reward": 0}


def test_enqueue_scores_new_images_after_commit(scorers, scene, django_capture_on_commit_callbacks):
    from generation.scoring.services import scores_enqueue_for_images

    ids = [i.id for i in scene["images"].values()]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        scores_enqueue_for_images(ids)
        assert ImageScore.objects.count() == 0  # nothing before the commit
    assert len(callbacks) == 1
    assert ImageScore.objects.filter(kind="aesthetic").count() == 4 and ImageScore.objects.filter(kind="ccip").count() == 2


def test_enqueue_without_scorers_is_a_logged_no_op(no_scorers, scene, django_capture_on_commit_callbacks, caplog):
    from generation.scoring.services import scores_enqueue_for_images

    with caplog.at_level("INFO"), django_capture_on_commit_callbacks(execute=True) as callbacks:
        scores_enqueue_for_images([i.id for i in scene["images"].values()])
    assert callbacks == [] and ImageScore.objects.count() == 0
    assert "no scorer files" in caplog.text


def test_the_task_logs_broken_scorers_instead_of_raising(scorers, scene, caplog):
    from generation.scoring.tasks import score_images

    (scorers / "ccip" / "metrics.json").write_text("{}")
    result = score_images.apply(args=([scene["images"]["a_char"].id],)).get()
    assert "threshold" in result["error"] and ImageScore.objects.count() == 0


def test_make_tiny_scorers_writes_loadable_files_and_leaves_existing_folders(tmp_path, capsys):
    call_command("make_tiny_scorers", str(tmp_path))
    for kind in ("ccip", "aesthetic", "alignment"):
        scorer_files(kind, tmp_path)
    first = files_hash(scorer_files("aesthetic", tmp_path).files)
    call_command("make_tiny_scorers", str(tmp_path))
    assert "left as it is" in capsys.readouterr().out
    call_command("make_tiny_scorers", str(tmp_path), "--force")
    assert files_hash(scorer_files("aesthetic", tmp_path).files) == first  # deterministic for a seed
