"""A finished reward run becomes the scorers' reward judge: its model is registered (and its images queued for
scores), so its agreement with people shows on the stats page; a model trained on other open_clip weights than
the installed ones leaves the run done with a clear message, and installs nothing."""

import pytest

from generation.scoring.files import REWARD, scorer_state
from tests.training.runs_helpers import voted_dataset
from training import services
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def installed_clip(settings, tmp_path):
    from generation.scoring.openclip import tiny_open_clip_write

    settings.TRAINING_DIR = tmp_path / "training"
    settings.TRAIN_MIN_DATASET_ROWS = 2
    settings.SCORERS_DIR = tmp_path / "scorers"
    return str(tiny_open_clip_write(settings.SCORERS_DIR / "open_clip", seed=0))


def _reward_run(clip, callbacks):
    dataset = voted_dataset(polls=8)
    with callbacks(execute=True):
        run = services.run_create(method="reward", dataset=dataset,
                                  config={"open_clip_dir": clip, "epochs": 20, "heldout_fraction": 0.25})
    return TrainingRun.objects.get(pk=run.pk)


def test_a_finished_reward_run_is_the_reward_judge(installed_clip, client, django_capture_on_commit_callbacks):
    from django.urls import reverse

    from generation.scoring.models import ImageScore
    from generation.scoring.selectors import reward_judge

    run = _reward_run(installed_clip, django_capture_on_commit_callbacks)
    assert run.status == "done" and run.error == ""
    judge = reward_judge()
    assert judge["state"] == "installed" and judge["name"].startswith(f"reward run {run.pk} ")
    assert judge["heldout_pairs"] == run.result["heldout_pairs"]
    assert ImageScore.objects.filter(kind=REWARD).count() == 18  # the 9 polls' images, scored (eager tasks)
    html = client.get(reverse("arena:stats")).content.decode()
    assert f"reward run {run.pk}" in html


def test_a_reward_run_on_other_open_clip_weights_says_why_it_is_not_a_judge(installed_clip, tmp_path,
                                                                            django_capture_on_commit_callbacks):
    from generation.scoring.openclip import tiny_open_clip_write

    other = str(tiny_open_clip_write(tmp_path / "other-clip", seed=1))
    run = _reward_run(other, django_capture_on_commit_callbacks)
    assert run.status == "done"
    assert "could not be registered as a judge" in run.error and "other open_clip weights" in run.error
    assert scorer_state(REWARD).state == "missing"
