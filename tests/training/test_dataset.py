"""The preference dataset file: Pick-a-Pic's columns plus ours, deterministic bytes, and how each trainer reads the
row kinds (ties never counted as wins, both-bad only for the KTO term)."""

import io
import random

import pyarrow.parquet as pq
import pytest
from PIL import Image

from training.trainers.dataset import COLUMNS, PreferenceRow, read_dataset, write_dataset
from training.trainers.errors import TrainingError


def png(color, size=16):
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def rows():
    out = [PreferenceRow(png((i, 0, 0)), png((0, i, 0)), 1.0, 0.0, f"caption {i}", poll_id=i) for i in range(5)]
    out.append(PreferenceRow(png((9, 9, 0)), png((0, 9, 9)), 0.0, 1.0, "right wins", poll_id=5))
    out.append(PreferenceRow(png((1, 1, 1)), png((2, 2, 2)), 0.5, 0.5, "tie", poll_id=6, kind="tie"))
    out.append(PreferenceRow(png((3, 3, 3)), png((4, 4, 4)), 0.0, 0.0, "both bad", poll_id=7, kind="both_bad"))
    # a best-only free-for-all: the winner over each of the three others, weight 1/3 each
    win = png((200, 100, 0))
    out += [PreferenceRow(win, png((0, 0, 50 + k)), 1.0, 0.0, "ffa", poll_id=8, weight=1 / 3, source_mode="ffa_best")
            for k in range(3)]
    return out


def test_same_rows_in_any_order_give_the_same_bytes(tmp_path):
    a = write_dataset(rows(), tmp_path / "a.parquet", vote_log_hash="h1", filters={"mode": "all"})
    shuffled = rows()
    random.Random(3).shuffle(shuffled)
    b = write_dataset(shuffled, tmp_path / "b.parquet", vote_log_hash="h1", filters={"mode": "all"})
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert a.sha256 == b.sha256
    assert a.vote_log_hash == "h1" and a.filters == {"mode": "all"}
    assert a.counts == {"ffa_best": {"pair": 3}, "fixed_duel": {"both_bad": 1, "pair": 6, "tie": 1}}


def test_outside_tools_read_pick_a_pic_columns(tmp_path):
    write_dataset(rows(), tmp_path / "d.parquet", vote_log_hash="h")
    table = pq.read_table(tmp_path / "d.parquet", filters=[("kind", "=", "pair")])
    assert table.column_names == list(COLUMNS)
    assert set(table.column("label_0").to_pylist()) == {0.0, 1.0}  # no tie or both-bad row among the pairs
    image = Image.open(io.BytesIO(table.column("jpg_0")[0].as_py()))
    assert image.size == (16, 16)


def test_dpo_drops_ties_and_both_bad_and_reward_keeps_ties_at_one_half(tmp_path):
    write_dataset(rows(), tmp_path / "d.parquet", vote_log_hash="h")
    ds = read_dataset(tmp_path / "d.parquet")
    kinds = ds.columns["kind"]
    dpo = ds.pairs_for("dpo")
    assert {kinds[p.row] for p in dpo} == {"pair"} and len(dpo) == 9
    right = next(p for p in dpo if ds.value("caption", p.row) == "right wins")
    assert right.first == 1 and right.label == 1.0  # label_1 = 1: image 1 is the winner
    reward = ds.pairs_for("reward")
    assert sorted(p.label for p in reward if kinds[p.row] == "tie") == [0.5]
    assert all(kinds[p.row] != "both_bad" for p in reward) and len(reward) == 10
    bad = ds.undesirable_for()
    assert [(kinds[r], j) for r, j, _ in bad] == [("both_bad", 0), ("both_bad", 1)]


def test_supervised_examples_are_the_distinct_winners_with_weights_summed(tmp_path):
    write_dataset(rows(), tmp_path / "d.parquet", vote_log_hash="h")
    ds = read_dataset(tmp_path / "d.parquet")
    preferred = ds.preferred_images()
    assert len(preferred) == 7  # 6 duel winners + the free-for-all winner once
    ffa = [w for r, j, w in preferred if ds.value("source_mode", r) == "ffa_best"]
    assert ffa == [pytest.approx(1.0)]
    for r, j, _ in preferred:
        assert ds.value(f"label_{j}", r) == 1.0


@pytest.mark.parametrize("bad, message", [
    (dict(kind="tie", label_0=1.0, label_1=0.0), "tie row needs labels (0.5, 0.5)"),
    (dict(kind="pair", label_0=0.5, label_1=0.5), "pair row needs labels (1, 0) or (0, 1)"),
    (dict(kind="maybe"), "kind must be one of"),
    (dict(weight=0.0), "weight must be above 0"),
    (dict(jpg_1=b""), "both images are needed"),
])
def test_bad_rows_are_refused_with_a_clear_message(tmp_path, bad, message):
    base = dict(jpg_0=png((1, 2, 3)), jpg_1=png((3, 2, 1)), label_0=1.0, label_1=0.0, caption="c", poll_id=1)
    with pytest.raises(TrainingError, match="^dataset row 0 .*" + message.replace("(", r"\(").replace(")", r"\)")):
        write_dataset([PreferenceRow(**{**base, **bad})], tmp_path / "d.parquet", vote_log_hash="h")
    assert not (tmp_path / "d.parquet").exists()


def test_a_missing_file_or_column_is_a_one_line_error(tmp_path):
    with pytest.raises(TrainingError, match="dataset not found"):
        read_dataset(tmp_path / "nope.parquet")
    write_dataset(rows(), tmp_path / "d.parquet", vote_log_hash="h")
    table = pq.read_table(tmp_path / "d.parquet").drop(["poll_id", "kind"])
    pq.write_table(table, tmp_path / "short.parquet")
    with pytest.raises(TrainingError, match="lacks column.s. kind, poll_id"):
        read_dataset(tmp_path / "short.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(TrainingError, match="unreadable dataset junk.parquet"):
        read_dataset(tmp_path / "junk.parquet")


def test_images_are_read_one_row_group_at_a_time(tmp_path):
    many = [PreferenceRow(png((i % 256, i // 256, 7)), png((7, i % 256, 1)), 1.0, 0.0, "c", poll_id=i)
            for i in range(150)]
    write_dataset(many, tmp_path / "d.parquet", vote_log_hash="h")
    ds = read_dataset(tmp_path / "d.parquet")
    assert ds._file.num_row_groups == 3
    assert ds.images(149)[0] == many[149].jpg_0 and ds.images(0)[1] == many[0].jpg_1
    with pytest.raises(TrainingError, match="row 150 out of range"):
        ds.images(150)


def test_dataset_errors_say_what_each_method_lacks(tmp_path):
    from training.trainers.dataset import dataset_errors

    only_ties = [r for r in rows() if r.kind in ("tie", "both_bad")]
    write_dataset(only_ties, tmp_path / "ties.parquet", vote_log_hash="h")
    assert dataset_errors(tmp_path / "ties.parquet", "dpo") == [
        "the dataset has 0 pair rows (DPO uses no tie or both-bad rows); dpo needs at least 1"]
    assert dataset_errors(tmp_path / "ties.parquet", "reward") == [
        "the dataset has 1 pair or tie rows; reward needs at least 2"]
    write_dataset(rows(), tmp_path / "all.parquet", vote_log_hash="h")
    assert dataset_errors(tmp_path / "all.parquet", "dpo", kto_weight=1.0) == []
    assert dataset_errors(tmp_path / "all.parquet", "sft", min_examples=50) == [
        "the dataset has 9 pair rows (their preferred images); sft needs at least 50"]
    assert dataset_errors(tmp_path / "missing.parquet", "dpo")[0].startswith("dataset not found")
