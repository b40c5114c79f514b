"""The reward model: a Bradley-Terry head on frozen open_clip embeddings. It must learn the synthetic judge's
preference (held-out interval above one half) and not learn shuffled labels (interval containing one half);
its file scores images through a pure function, with the same embeddings the scorers' open_clip model gives."""

import io
import json
import random

import numpy as np
import pytest
from PIL import Image
from scipy.stats import binomtest

from training.trainers.config import RewardConfig, RunPaths
from training.trainers.dataset import PreferenceRow, write_dataset
from training.trainers.errors import TrainingError
from training.trainers.judge import synthetic_image, warmth
from training.trainers.reward import RewardModel, score, train_reward, wilson_interval
from training.trainers.synthetic import synthetic_rows

from .conftest import Events


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from generation.scoring.openclip import tiny_open_clip_write

    return str(tiny_open_clip_write(tmp_path_factory.mktemp("clip"), seed=0))


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    """300 judged pairs and 20 ties, every image with its own seed."""
    root = tmp_path_factory.mktemp("reward")
    rows = synthetic_rows(300, ties=20, seed=4)
    write_dataset(rows, root / "judged.parquet", vote_log_hash="judge")
    shuffled = []
    coin = random.Random(0)
    for r in rows:  # the control: each pair's label by a coin flip
        if r.kind == "pair" and coin.random() < 0.5:
            r = PreferenceRow(**{**r.__dict__, "label_0": r.label_1, "label_1": r.label_0})
        shuffled.append(r)
    write_dataset(shuffled, root / "shuffled.parquet", vote_log_hash="shuffled")
    return root


def run(clip_dir, dataset, out, **kw):
    events = Events()
    result = train_reward(RewardConfig(open_clip_dir=clip_dir, **kw), RunPaths(str(dataset), str(out), str(out)),
                          on_progress=events)
    return result, events


def test_learns_the_judge_on_held_out_polls_and_not_shuffled_labels(clip_dir, judged, tmp_path):
    result, events = run(clip_dir, judged / "judged.parquet", tmp_path / "a")
    assert result.heldout_pairs >= 50 and result.heldout_ci_low > 0.5, result
    control, _ = run(clip_dir, judged / "shuffled.parquet", tmp_path / "b")
    assert control.heldout_ci_low < 0.5 < control.heldout_ci_high, control
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    assert events[-1]["heldout_ci_low"] == result.heldout_ci_low


def test_wilson_interval_is_scipys():
    for k, n in [(0, 10), (7, 10), (45, 59), (59, 59)]:
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_file_format_and_the_scoring_function(clip_dir, judged, tmp_path):
    result, _ = run(clip_dir, judged / "judged.parquet", tmp_path)
    from training.trainers.kohya import read_metadata

    meta = read_metadata(result.model_file)
    assert meta["format"] == "arena.reward.bradley_terry.v1" and meta["use_prompt"] == "true"
    assert meta["embed_dim"] == "32" and float(meta["heldout_acc"]) == result.heldout_acc
    assert json.loads(meta["config"])["open_clip_dir"] == clip_dir
    warm = [synthetic_image(1000 + i, warm=0.9) for i in range(10)]
    cold = [synthetic_image(2000 + i, warm=-0.9) for i in range(10)]
    prompts = ["1girl, solo, smile, outdoors"] * 10
    s_warm = score(warm, prompts, model_file=result.model_file, open_clip_dir=clip_dir)
    s_cold = score(cold, prompts, model_file=result.model_file, open_clip_dir=clip_dir)
    assert len(s_warm) == 10 and all(isinstance(v, float) for v in s_warm)
    assert np.mean(np.array(s_warm) > np.array(s_cold)) >= 0.9  # the judge prefers warm pictures
    assert warmth(warm[0]) > warmth(cold[0])
    with pytest.raises(TrainingError, match="2 images but 1 prompts"):
        score(warm[:2], prompts[:1], model_file=result.model_file, open_clip_dir=clip_dir)


def test_embeddings_equal_the_scorers_open_clip_model(clip_dir):
    from generation.scoring.openclip import OpenClipModel

    from training.trainers.embeddings import OpenClipEmbedder

    images = [synthetic_image(i, warm=0.3 * i - 0.5) for i in range(4)]
    images.append(Image.new("RGBA", (40, 30), (255, 0, 0, 128)))
    texts = ["1girl, BREAK smile", "scenery"]
    ours, theirs = OpenClipEmbedder(clip_dir), OpenClipModel(clip_dir)
    assert np.allclose(ours.image_embeddings(images), theirs.image_embeddings(images), atol=1e-6)
    assert np.allclose(ours.text_embeddings(texts), theirs.text_embeddings(texts), atol=1e-6)


def test_scoring_with_other_open_clip_weights_is_refused(clip_dir, judged, tmp_path):
    from generation.scoring.openclip import tiny_open_clip_write

    result, _ = run(clip_dir, judged / "judged.parquet", tmp_path / "a")
    other = str(tiny_open_clip_write(tmp_path / "other-clip", seed=1))
    with pytest.raises(TrainingError, match="trained on other open_clip weights"):
        RewardModel.load(result.model_file, open_clip_dir=other)
    with pytest.raises(TrainingError, match="reward model not found"):
        RewardModel.load(tmp_path / "missing.safetensors", open_clip_dir=clip_dir)


def test_too_few_pairs_is_a_clear_error(clip_dir, tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    rows = [PreferenceRow(buf.getvalue(), buf.getvalue(), 0.0, 0.0, "c", poll_id=1, kind="both_bad")]
    write_dataset(rows, tmp_path / "d.parquet", vote_log_hash="h")
    with pytest.raises(TrainingError, match="has 0 usable pair or tie rows"):
        run(clip_dir, tmp_path / "d.parquet", tmp_path / "out")
