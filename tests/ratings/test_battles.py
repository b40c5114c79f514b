import io
import json

import pytest

from ratings.battles import (
    clean_battles, parse_clean_battles, read_clean_battles, write_battles, write_table_battles,
)
from ratings.bench import synthetic_duels
from ratings.log import VoteRecord, VoteTable

NAMES = {1: "illustrious-xl-v0.1", 2: "illustrious-xl-v1.0", 3: 'odd "name"'}
IDS = {v: k for k, v in NAMES.items()}


def _duels():
    return [
        VoteRecord(11, 1_700_000_000.123456, "fixed", (1, 2), (0, 1)),
        VoteRecord(12, 1_700_000_000.123456, "fixed", (2, 3), (1, 0)),
        VoteRecord(13, 1_700_000_005.5, "fixed", (3, 1), (0, 0)),
        VoteRecord(14, 1_700_000_009.0, "fixed", (1, 3), (0, 0), both_bad=True),
    ]


def test_duels_are_written_in_the_clean_battle_format_in_replay_order():
    battles = list(clean_battles(reversed(_duels()), NAMES, judges={12: "voter-hash-ab12"}))
    assert battles[0] == {
        "model_a": "illustrious-xl-v0.1", "model_b": "illustrious-xl-v1.0", "winner": "model_a",
        "judge": "anonymous", "tstamp": 1_700_000_000.123456, "anony": True, "question_id": "11",
    }
    assert [b["winner"] for b in battles] == ["model_a", "model_b", "tie", "tie (bothbad)"]
    assert battles[1]["judge"] == "voter-hash-ab12"


def test_export_then_parse_gives_back_the_same_votes():
    buffer = io.StringIO()
    assert write_battles(buffer, clean_battles(_duels(), NAMES)) == 4
    parsed = parse_clean_battles(buffer.getvalue(), IDS, mode="fixed")
    assert parsed == _duels()


def test_read_clean_battles_reads_a_file(tmp_path):
    path = tmp_path / "battles.json"
    with open(path, "w") as fp:
        write_battles(fp, clean_battles(_duels(), NAMES))
    assert read_clean_battles(str(path), IDS, mode="fixed") == _duels()


def test_free_for_all_polls_are_written_as_their_pairwise_results():
    poll = VoteRecord(5, 10.0, "ffa", (1, 2, 3), (1, 0, 1))
    battles = list(clean_battles([poll], NAMES))
    assert [(b["model_a"], b["model_b"], b["winner"], b["question_id"]) for b in battles] == [
        ("illustrious-xl-v1.0", "illustrious-xl-v0.1", "model_a", "5.0"),
        ("illustrious-xl-v1.0", 'odd "name"', "model_a", "5.1"),
    ]
    # they parse as duels numbered by position, since their question ids are not vote ids
    assert [r.id for r in parse_clean_battles(battles, IDS)] == [0, 1]


def test_fast_table_writer_writes_the_same_json_as_the_generic_one():
    table = synthetic_duels(votes=300, models=5, seed=1)
    names = {int(m): f"m{int(m)}" for m in table.models}
    fast, generic = io.StringIO(), io.StringIO()
    write_table_battles(fast, table, names)
    write_battles(generic, clean_battles(table.to_records(), names))
    assert fast.getvalue() == generic.getvalue()
    assert {b["winner"] for b in json.loads(fast.getvalue())} == {"model_a", "model_b", "tie", "tie (bothbad)"}
    assert parse_clean_battles(fast.getvalue(), {v: k for k, v in names.items()}) == table.to_records()


def test_an_unknown_winner_is_refused():
    with pytest.raises(ValueError, match="unknown winner"):
        parse_clean_battles([{"model_a": "illustrious-xl-v0.1", "model_b": "illustrious-xl-v1.0", "winner": "left",
                              "tstamp": 1.0, "question_id": "1"}], IDS)


def test_an_empty_log_is_an_empty_list():
    buffer = io.StringIO()
    write_table_battles(buffer, VoteTable.from_records([]), {})
    assert json.loads(buffer.getvalue()) == []
