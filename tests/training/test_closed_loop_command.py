"""``manage.py closed_loop``: the trainer-level loop on a cheap setting, then the child enrolled in the arena
through the training app's registration path as a fine-tune of the registered tiny parent; bad options refused."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from generation.models import ModelVariant

CHEAP = json.dumps({"train_batch_size": 2})


def _run(tiny_models, tmp_path, *args):
    out = StringIO()
    call_command("closed_loop", "--tiny-dir", tiny_models.root, "--work-dir", str(tmp_path / "loop"), "--pairs", "6",
                 "--heldout-polls", "4", "--steps", "2", "--loop-settings", CHEAP, *args, stdout=out, stderr=StringIO())
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.mark.django_db
def test_the_loop_prints_its_line_and_enrols_the_child_under_its_parent(tiny_models, tmp_path):
    line = _run(tiny_models, tmp_path, "--method", "dpo", "--seed", "5", "--shuffle-labels")
    for key in ("pairs", "train_steps", "train_s", "implicit_acc", "child_win_rate", "ci_low", "ci_high",
                "heldout_polls", "mse_ratio", "lora_file"):
        assert key in line, key
    assert line["labels"] == "shuffled" and line["train_steps"] == 2 and line["heldout_polls"] == 4
    assert 0 <= line["ci_low"] <= line["child_win_rate"] <= line["ci_high"] <= 1
    child = ModelVariant.objects.get(id=line["child_variant"]["id"])
    parent = ModelVariant.objects.get(id=line["child_variant"]["parent"])
    assert child.parent_id == parent.id and child.kind == ModelVariant.Kind.FINETUNE
    assert parent.prediction_type == "v" and parent.source_path == tiny_models.v_file
    assert child.card["labels"] == "shuffled" and child.card["steps"] == 2
    assert any(lora.path.endswith(".safetensors") for lora in child.loras.all())
    # A second loop enrols its child under the same parent, registered once.
    again = _run(tiny_models, tmp_path / "2", "--method", "sft", "--seed", "6", "--no-sibling")
    assert again["child_variant"]["parent"] == parent.id and again["child_variant"]["id"] != child.id
    assert "sibling_win_rate" not in again
    assert ModelVariant.objects.filter(name=parent.name).count() == 1 and parent.children.count() == 2


@pytest.mark.parametrize("args, message", [
    (["--loop-settings", "{not json"], "not JSON"),
    (["--loop-settings", "[1]"], "JSON object"),
    (["--loop-settings", '{"no_such_field": 1}'], "no_such_field"),
    (["--pairs", "0"], "at least 1"),
])
def test_bad_options_are_refused_with_a_message(args, message, tmp_path):
    with pytest.raises(CommandError, match=message):
        call_command("closed_loop", "--method", "dpo", "--work-dir", str(tmp_path), *args)


def test_the_label_controls_exclude_each_other():
    with pytest.raises(CommandError):
        call_command("closed_loop", "--method", "dpo", "--shuffle-labels", "--reverse-labels")
