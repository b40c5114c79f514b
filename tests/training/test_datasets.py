"""Preference datasets from the vote log: each poll's mapping to rows, the filters, the stamp of the log, the bytes."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from arena.models import Mode
from arena.selectors.votelog import log_head
from tests.arena.votelog import cast
from tests.arena.factories import make_variant
from training import services
from training.models import PreferenceDataset
from training.trainers.dataset import read_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def models4():
    return [make_variant(f"M{i}") for i in range(4)]


def _rows(path):
    return pq.read_table(path).to_pylist()


def _build(tmp_path, **filters):
    info, expansion, head = services.dataset_write(filters=services.filters_clean(**filters), path=tmp_path / "d.parquet")
    return info, _rows(info.path)


def test_a_duel_gives_one_pair_with_the_winner_labelled(models4, tmp_path):
    a, b = models4[:2]
    cast((a, b), "right", images=True)
    info, rows = _build(tmp_path)
    assert len(rows) == 1
    row = rows[0]
    assert (row["label_0"], row["label_1"], row["kind"], row["weight"]) == (0.0, 1.0, "pair", 1.0)
    assert row["source_mode"] == "fixed_duel" and row["caption"].startswith("1girl, poll")
    assert row["jpg_0"] != row["jpg_1"] and row["jpg_0"][:8] == b"\x89PNG\r\n\x1a\n"
    assert (row["seed"], row["sampler"], row["steps"], row["width"], row["height"]) == (1, "Euler a", 20, 64, 64)


def test_ties_and_both_bad_are_kept_as_labelled_rows_and_dpo_uses_neither(models4, tmp_path):
    a, b = models4[:2]
    cast((a, b), "tie", images=True)
    cast((a, b), "bothbad", images=True)
    cast((a, b), "left", images=True)
    info, rows = _build(tmp_path)
    kinds = {r["kind"]: (r["label_0"], r["label_1"]) for r in rows}
    assert kinds == {"pair": (1.0, 0.0), "tie": (0.5, 0.5), "both_bad": (0.0, 0.0)}
    ds = read_dataset(info.path)
    assert [p.label for p in ds.pairs_for("dpo")] == [1.0]  # the tie is not a win
    assert sorted(p.label for p in ds.pairs_for("reward")) == [0.5, 1.0]
    assert len(ds.undesirable_for()) == 2  # both images of the both-bad row


def test_best_only_free_for_all_gives_the_winner_over_each_other_image_at_a_third(models4, tmp_path):
    cast(models4, "best", mode=Mode.FFA, best=2, images=True)
    info, rows = _build(tmp_path)
    assert len(rows) == 3 and all(r["weight"] == pytest.approx(1 / 3) for r in rows)
    ds = read_dataset(info.path)
    winners = {ds.image(p.row, p.first) for p in ds.pairs_for("dpo")}
    assert len(winners) == 1  # the same image wins all three
    assert {r["source_mode"] for r in rows} == {"ffa_best"}


def test_a_full_ranking_gives_six_ordered_pairs_at_a_sixth(models4, tmp_path):
    vote = cast(models4, "ranking", mode=Mode.FFA, ranking=[2, 0, 3, 1], images=True)
    info, rows = _build(tmp_path)
    assert len(rows) == 6 and all(r["weight"] == pytest.approx(1 / 6) for r in rows)
    ds = read_dataset(info.path)
    from arena.models import PollEntry

    position_of = {e.image.voter_file.open("rb").read(): e.position for e in PollEntry.objects.filter(poll=vote.poll)}
    for p in ds.pairs_for("dpo"):
        winner, loser = ds.image(p.row, p.first), ds.image(p.row, 1 - p.first)
        assert vote.ranks[position_of[winner]] < vote.ranks[position_of[loser]]


def test_filters_modes_models_dates_and_flagged_votes(models4, tmp_path):
    a, b, c, d = models4
    cast((a, b), "left", images=True, minutes=0)
    cast((c, d), "left", images=True, minutes=60 * 24 * 3)  # three days later
    cast((a, c), "left", images=True, mode=Mode.FREE)
    cast((a, b), "right", images=True, flagged=True, counted=True)  # too fast, counted anyway
    assert len(_build(tmp_path)[1]) == 3
    assert len(_build(tmp_path, exclude_flagged=False)[1]) == 4
    assert {r["source_mode"] for r in _build(tmp_path, modes=["free"])[1]} == {"free_duel"}
    assert len(_build(tmp_path, models=[a.pk, b.pk])[1]) == 1
    assert len(_build(tmp_path, date_to=dt.date(2025, 3, 2))[1]) == 2
    # the voter "a"*32 cast a flagged vote: leaving out such voters leaves out all of these votes
    assert _build(tmp_path, exclude_flagged_voters=True)[1] == []


def test_votes_of_an_excluded_voter_never_go_in(models4, tmp_path):
    from arena.services.hygiene import voter_exclude
    from arena.voters import voter_hash

    a, b = models4[:2]
    cast((a, b), "left", images=True, voter="b" * 32)
    cast((a, b), "left", images=True, voter="c" * 32)
    voter_exclude(judge=voter_hash("b" * 32), reason="test")
    assert len(_build(tmp_path)[1]) == 1


def test_bad_filters_are_refused_with_a_reason():
    with pytest.raises(Exception) as exc:
        services.filters_clean(modes=["chess"], date_from=dt.date(2025, 2, 1), date_to=dt.date(2025, 1, 1),
                               models=[999999])
    messages = " ".join(exc.value.messages)
    assert "unknown mode" in messages and "ends" in messages and "999999" in messages


def test_the_same_log_and_filters_give_the_same_bytes_and_the_file_records_the_head(models4, tmp_path):
    a, b, c, d = models4
    cast((a, b), "left", images=True)
    cast(models4, "best", mode=Mode.FFA, best=1, images=True)
    cast((c, d), "tie", images=True)
    one = services.dataset_write(filters=services.filters_clean(), path=tmp_path / "one.parquet")[0]
    two = services.dataset_write(filters=services.filters_clean(), path=tmp_path / "two.parquet")[0]
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "two.parquet").read_bytes()
    assert one.sha256 == two.sha256
    meta = json.loads(pq.read_schema(tmp_path / "one.parquet").metadata[b"arena"])
    assert meta["vote_log_hash"] == log_head()[1] != ""
    assert meta["counts"] == {"ffa_best": {"pair": 3}, "fixed_duel": {"pair": 1, "tie": 1}}
    cast((a, d), "left", images=True)  # a new vote: another log, other bytes
    three = services.dataset_write(filters=services.filters_clean(), path=tmp_path / "three.parquet")[0]
    assert three.sha256 != one.sha256


def test_the_command_writes_the_file_and_can_record_it(models4, tmp_path, settings, capsys):
    settings.TRAINING_DIR = tmp_path / "training"
    a, b = models4[:2]
    cast((a, b), "left", images=True)
    cast((a, b), "right", images=True, mode=Mode.FREE)
    out = tmp_path / "cmd.parquet"
    call_command("preference_dataset", "--out", str(out), "--modes", "fixed", "--record", "fixed only")
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["rows"] == 1 and out.is_file() and printed["counts"] == {"fixed_duel": {"pair": 1}}
    recorded = PreferenceDataset.objects.get(pk=printed["dataset_id"])
    assert recorded.sha256 == printed["sha256"] and recorded.rows == 1 and recorded.vote_log_hash == printed["vote_log_hash"]
    with pytest.raises(CommandError, match="unknown mode"):
        call_command("preference_dataset", "--out", str(out), "--modes", "chess")


def test_building_from_no_matching_votes_is_refused(models4, settings, tmp_path):
    settings.TRAINING_DIR = tmp_path / "training"
    with pytest.raises(Exception, match="empty"):
        services.dataset_build(filters=services.filters_clean())
    assert PreferenceDataset.objects.count() == 0
