"""CCIP preprocessing, the tiny ONNX pair, the threshold rule and the ccip_difference command."""

import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from generation.scoring.ccip import CLIP_MEAN, CLIP_STD, CcipModel, ccip_preprocess, to_rgb_on_white
from generation.scoring.files import ScorerUnavailable

MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
STD = np.array([0.26862954, 0.26130258, 0.27577711])


def test_preprocessing_of_a_uniform_image_matches_a_hand_computation():
    out = ccip_preprocess(PILImage.new("RGB", (100, 37), (255, 0, 51)))
    assert out.shape == (3, 384, 384) and out.dtype == np.float32  # aspect not kept, CHW float32
    expected = (np.array([255, 0, 51]) / 255.0 - MEAN) / STD  # [0,1] then CLIP mean/std
    for channel in range(3):
        assert np.allclose(out[channel], expected[channel], atol=1e-6)
    assert tuple(CLIP_MEAN) == tuple(MEAN) and tuple(CLIP_STD) == tuple(STD)


def test_transparency_is_composited_on_white():
    clear = ccip_preprocess(PILImage.new("RGBA", (30, 30), (10, 200, 30, 0)))
    assert np.allclose(clear[:, 0, 0], (1.0 - MEAN) / STD, atol=1e-6)
    half = to_rgb_on_white(PILImage.new("RGBA", (4, 4), (0, 0, 0, 128)))
    # 0 * 128/255 + 255 * (1 - 128/255) = 127
    assert abs(half.getpixel((0, 0))[0] - 127) <= 1
    assert to_rgb_on_white(PILImage.new("L", (2, 2), 9)).mode == "RGB"


def test_resize_is_bilinear_to_384_without_keeping_aspect():
    pic = PILImage.fromarray(np.array([[[0, 0, 0], [255, 255, 255]]], dtype=np.uint8))  # 2x1, black|white
    out = ccip_preprocess(pic)
    by_hand = np.asarray(pic.resize((384, 384), PILImage.BILINEAR), dtype=np.float64)[..., 0] / 255.0
    assert np.allclose(out[0], (by_hand - MEAN[0]) / STD[0], atol=1e-5)
    assert out[0, 0, 0] < out[0, 0, 383]  # left dark, right light, every row the same
    assert np.allclose(out[0, 0], out[0, 383])


def test_difference_matrix_is_symmetric_with_zero_diagonal(tiny_scorer_root):
    model = CcipModel(tiny_scorer_root / "ccip")
    rng = np.random.default_rng(3)
    pics = [PILImage.fromarray(rng.integers(0, 255, (50 + 7 * i, 40, 3), dtype=np.uint8)) for i in range(5)]
    pics.append(PILImage.new("RGB", (20, 20), (250, 0, 0)))
    feats = model.features(pics)
    assert feats.shape == (6, 32) and feats.dtype == np.float32
    matrix = model.differences(feats)
    assert matrix.shape == (6, 6)
    assert np.allclose(matrix, matrix.T, atol=1e-6)
    assert np.allclose(np.diag(matrix), 0.0, atol=1e-6)
    assert (matrix >= 0).all() and (matrix <= 1).all()
    # the tiny metrics model is (1 - cosine) / 2 by construction
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    assert np.allclose(matrix, np.clip((1 - unit @ unit.T) / 2, 0, 1), atol=1e-5)
    # features are the feature model's, batch by batch the same
    assert np.allclose(model.features(pics[:1])[0], feats[0], atol=1e-5)


def test_same_character_means_at_or_below_the_threshold(tiny_scorer_root):
    model = CcipModel(tiny_scorer_root / "ccip")
    assert model.threshold == pytest.approx(0.2)
    assert model.same(0.2) and model.same(0.19999) and not model.same(0.20001)


def test_missing_ccip_folder_or_file_is_a_clear_error(tmp_path, tiny_scorer_root):
    with pytest.raises(ScorerUnavailable, match="does not exist"):
        CcipModel(tmp_path / "nothing")
    (tmp_path / "ccip").mkdir()
    (tmp_path / "ccip" / "model_feat.onnx").write_bytes((tiny_scorer_root / "ccip" / "model_feat.onnx").read_bytes())
    with pytest.raises(ScorerUnavailable, match="model_metrics.onnx, metrics.json"):
        CcipModel(tmp_path / "ccip")


def test_ccip_difference_command_prints_the_difference_last(tiny_scorer_root, tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    PILImage.new("RGB", (50, 70), (250, 10, 10)).save(a)
    PILImage.new("RGBA", (64, 64), (10, 10, 250, 255)).save(b)
    call_command("ccip_difference", "--model-dir", str(tiny_scorer_root / "ccip"), str(a), str(b))
    lines = capsys.readouterr().out.strip().splitlines()
    model = CcipModel(tiny_scorer_root / "ccip")
    expected = model.difference(PILImage.open(a), PILImage.open(b))
    assert float(lines[-1]) == pytest.approx(expected, abs=1e-6)
    assert any("threshold" in line for line in lines[:-1])


def test_ccip_difference_command_without_a_model_folder_fails_clearly(tmp_path):
    a = tmp_path / "a.png"
    PILImage.new("RGB", (8, 8)).save(a)
    with pytest.raises(CommandError, match="does not exist"):
        call_command("ccip_difference", "--model-dir", str(tmp_path / "none"), str(a), str(a))


def test_metrics_json_without_threshold_is_reported(tiny_scorer_root, tmp_path):
    import shutil

    from generation.scoring.files import ScorerBroken, scorer_state

    shutil.copytree(tiny_scorer_root / "ccip", tmp_path / "ccip")
    (tmp_path / "ccip" / "metrics.json").write_text(json.dumps({"f1": 0.9}))
    with pytest.raises(ScorerBroken, match="threshold"):
        CcipModel(tmp_path / "ccip")
    state = scorer_state("ccip", tmp_path)
    assert state.state == "broken" and "threshold" in state.message
