"""The reward model as an automatic judge: a reward model trained (by the training app's trainer) on the tiny
open_clip the scorers use is registered, scores images, and its agreement with people shows on the stats page
next to the other judges; the scorer page ranks the models by it. Bad files are refused with a clear message."""

import datetime as dt

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from generation.scoring.files import REWARD, ScorerBroken, scorer_state
from generation.scoring.services import reward_judge_register, scores_compute
from training.trainers.judge import synthetic_image

T0 = dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


def train(clip_dir, out, seed=4):
    from training.trainers.config import RewardConfig, RunPaths
    from training.trainers.dataset import write_dataset
    from training.trainers.reward import train_reward
    from training.trainers.synthetic import synthetic_rows

    out.mkdir(parents=True, exist_ok=True)
    data = write_dataset(synthetic_rows(200, seed=seed), out / "d.parquet", vote_log_hash="h").path
    return train_reward(RewardConfig(open_clip_dir=str(clip_dir)), RunPaths(str(data), str(out), str(out)),
                        on_progress=lambda e: None)


@pytest.fixture(scope="module")
def trained(tiny_scorer_root, tmp_path_factory):
    """A reward model trained on the warmth judge's votes, with the scorers' tiny open_clip."""
    return train(tiny_scorer_root / "open_clip", tmp_path_factory.mktemp("reward-run"))


def duel(left, right, choice, n):
    from arena.models import Mode, Poll, PollEntry, Vote

    when = T0 + dt.timedelta(minutes=n)
    poll = Poll.objects.create(mode=Mode.FIXED, voter_key=f"{n:032x}", prompt=left.prompt, status=Poll.Status.VOTED,
                               expires_at=when + dt.timedelta(minutes=15), shown_at=when)
    for position, image in enumerate((left, right)):
        PollEntry.objects.create(poll=poll, position=position, variant=image.variant, image=image)
    Vote.objects.create(poll=poll, mode=Mode.FIXED, choice=choice, variants=[left.variant_id, right.variant_id],
                        ranks=[0, 1] if choice == "left" else [1, 0], voter_key=f"{n:032x}", created_at=when,
                        elapsed_ms=4000)


@pytest.fixture
def warm_and_cold(world):
    """Two models: one draws warm pictures, the other cold ones; 12 prompts with one image of each."""
    warm, cold = world.variant("Warm model"), world.variant("Cold model")
    pairs = []
    for i in range(12):
        prompt = world.prompt(f"1girl, solo, poll {i}")
        pairs.append((world.image(warm, prompt, synthetic_image(100 + i, warm=0.9), settings_key=f"k{i}", seed=i),
                      world.image(cold, prompt, synthetic_image(200 + i, warm=-0.9), settings_key=f"k{i}", seed=i)))
    return warm, cold, pairs


def test_a_registered_reward_model_scores_images_and_its_agreement_shows_on_the_stats_page(
        client, scorers, trained, warm_and_cold):
    from arena.services.ratings import ratings_apply_all
    from generation.scoring.models import ImageScore

    warm, cold, pairs = warm_and_cold
    judge = reward_judge_register(path=trained.model_file, name="tiny votes", score_existing=False)
    assert judge["state"] == "installed" and judge["name"] == "tiny votes"
    assert judge["heldout_acc"] == pytest.approx(trained.heldout_acc)
    report = scores_compute(kinds=[REWARD])
    assert report.scored[REWARD] == 24
    values = dict(ImageScore.objects.filter(kind=REWARD).values_list("image_id", "value"))
    assert all(values[w.id] > values[c.id] for w, c in pairs)  # it learned the judge: warm over cold
    # people chose the warm picture in 9 duels and the cold one in 3 (screen sides alternate)
    for n, (w, c) in enumerate(pairs):
        people_warm = n < 9
        left, right = (w, c) if n % 2 else (c, w)
        duel(left, right, "left" if (left is w) == people_warm else "right", n)
    ratings_apply_all()

    html = client.get(reverse("arena:stats")).content.decode()
    row = html[html.index('data-judge="reward"'):]
    row = row[:row.index("</tr>")]
    assert "tiny votes" in row and ">9<" in row and ">12<" in row and "75.0%" in row
    assert 'data-judge="aesthetic"' in html and "learned from votes like these" in html  # next to the other judges

    # pre-screen: the scorer page ranks the models by mean reward
    staff = get_user_model().objects.create_user("admin", password="pw", is_staff=True)
    client.force_login(staff)
    page = client.get(reverse("scoring:status")).content.decode()
    assert page.index(f'data-variant="{warm.id}"') < page.index(f'data-variant="{cold.id}"')
    assert "tiny votes" in page and "Pre-screen" in page


def test_the_judges_scores_are_the_trainers(scorers, trained):
    from generation.scoring.openclip import OpenClipModel
    from generation.scoring.reward import RewardHead
    from training.trainers.reward import score

    images = [synthetic_image(300 + i, warm=0.4 * i - 0.8) for i in range(5)]
    prompts = ["1girl, smile", "scenery BREAK sunset", "1boy", "cat", "city"]
    clip = OpenClipModel(scorers / "open_clip")
    ours = RewardHead(trained.model_file).score(clip.image_embeddings(images), clip.text_embeddings(prompts))
    theirs = score(images, prompts, model_file=trained.model_file, open_clip_dir=str(scorers / "open_clip"))
    assert np.allclose(ours, theirs, atol=1e-5)


def test_bad_or_missing_files_are_refused_with_a_clear_message(scorers, trained, tmp_path, db):
    from generation.scoring.openclip import tiny_open_clip_write

    with pytest.raises(ScorerBroken, match="reward model file not found"):
        reward_judge_register(path=tmp_path / "missing.safetensors")
    with pytest.raises(ScorerBroken, match="is not a reward model"):
        reward_judge_register(path=scorers / "open_clip" / "aesthetic_mlp.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ScorerBroken, match="not a readable .safetensors"):
        reward_judge_register(path=junk)
    other = train(tiny_open_clip_write(tmp_path / "other-clip", seed=1), tmp_path / "other-run")
    with pytest.raises(ScorerBroken, match="trained on other open_clip weights"):
        reward_judge_register(path=other.model_file)
    with pytest.raises(CommandError, match="not registered: reward model file not found"):
        call_command("register_reward_judge", str(tmp_path / "missing.safetensors"))
    assert scorer_state(REWARD).state == "missing"  # nothing was installed

    call_command("register_reward_judge", trained.model_file, "--name", "ok", "--no-score")
    assert scorer_state(REWARD).state == "installed"
    # the open_clip weights change under it: the judge is broken, says why, and scoring with it stops
    tiny_open_clip_write(scorers / "open_clip", seed=1)
    state = scorer_state(REWARD)
    assert state.state == "broken" and "trained on other open_clip weights" in state.message
    with pytest.raises(ScorerBroken, match="trained on other open_clip weights"):
        scores_compute(kinds=[REWARD])


def test_the_pages_say_when_the_reward_judge_is_broken(client, scorers, trained, db):
    reward_judge_register(path=trained.model_file, name="soon broken", score_existing=False)
    (scorers / "reward" / "reward_model.safetensors").write_bytes(b"\0" * 10)
    assert client.get(reverse("arena:stats")).status_code == 200
    staff = get_user_model().objects.create_user("admin", password="pw", is_staff=True)
    client.force_login(staff)
    page = client.get(reverse("scoring:status")).content.decode()
    assert "broken" in page and "not a readable .safetensors" in page


def test_registering_queues_every_image_for_its_score(scorers, trained, warm_and_cold,
                                                      django_capture_on_commit_callbacks):
    from generation.scoring.models import ImageScore

    with django_capture_on_commit_callbacks(execute=True):
        call_command("register_reward_judge", trained.model_file)
    assert ImageScore.objects.filter(kind=REWARD).count() == 24  # eager tasks: scored at once
    from generation.scoring.selectors import reward_judge
    from training.trainers.kohya import read_metadata

    assert reward_judge()["name"] == "dataset " + read_metadata(trained.model_file)["dataset_sha256"][:12]
