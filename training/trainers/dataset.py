"""The preference dataset file: Pick-a-Pic's columns plus ours, as Parquet. The Django builder writes with
``write_dataset``; the trainers read with ``read_dataset``. pyarrow only (no torch).

Columns (one row per judged pair of images; both images of a row share the prompt and settings):

=============== ======= =====================================================================================
jpg_0, jpg_1    binary  the two images' encoded bytes (PNG or JPEG: any format PIL reads; Pick-a-Pic's names)
label_0/_1      float64 pair: (1, 0) image 0 preferred or (0, 1) image 1; tie: (0.5, 0.5); both_bad: (0, 0)
caption         string  the prompt (A1111 syntax: weights, BREAK)
negative_prompt string
seed            int64   generation seed
sampler         string  A1111 sampler name ("Euler a")
schedule_type   string  A1111 schedule type ("Automatic", "Karras", ...)
steps           int32
cfg_scale       float64
width, height   int32   the images' size in pixels
clip_skip       int32   A1111 convention (1 = SDXL's usual penultimate layer)
weight          float64 the row's share of its poll: duel 1, best-only free-for-all 1/3, full ranking 1/6
kind            string  "pair" | "tie" | "both_bad"
poll_id         int64   the poll the vote was on (rows of one poll are split together into train/held-out)
source_mode     string  the poll mode ("fixed_duel", "free_duel", "ffa_best", "ffa_ranking", ...)
=============== ======= =====================================================================================

How the trainers use the kinds (``pairs_for``):

* **Diffusion-DPO**: ``pair`` rows only, winner over loser. Ties are dropped: the diffusers example treats any
  ``label_0`` other than 0 as "image 0 won", so a 0.5 would be counted as a win; we never do that. ``both_bad``
  rows give no preference, so nothing for the DPO term; with ``kto_weight`` > 0 each both-bad row gives two
  undesirable images to a Diffusion-KTO-style term (``undesirable_for``).
* **Supervised LoRA**: the preferred image of each ``pair`` row (an image that won several pairs, as a
  best-only free-for-all winner does, appears once with its weights summed).
* **Reward model**: ``pair`` rows as 1/0 and ``tie`` rows as 0.5; ``both_bad`` rows say nothing about the order.

Outside tools that read only ``label_0`` (the diffusers DPO example) must keep ``kind == "pair"`` first:
``pq.read_table(path, filters=[("kind", "=", "pair")])``.

Files are deterministic: rows are written in a canonical order (poll, kind, image hashes) with fixed writer
options and sorted-key metadata, so the same rows give the same bytes whatever order they came in. File-level
metadata (key ``arena``): format version, the vote-log head hash the rows came from, the counts per source mode
and kind, and the builder's filters.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from .errors import TrainingError

FORMAT_VERSION = 1
KINDS = ("pair", "tie", "both_bad")
ROW_GROUP_SIZE = 64  # rows per Parquet row group: images are read one group at a time
_LABELS = {"tie": (0.5, 0.5), "both_bad": (0.0, 0.0)}


def schema():
    import pyarrow as pa

    return pa.schema([
        ("jpg_0", pa.binary()), ("jpg_1", pa.binary()),
        ("label_0", pa.float64()), ("label_1", pa.float64()),
        ("caption", pa.string()), ("negative_prompt", pa.string()),
        ("seed", pa.int64()), ("sampler", pa.string()), ("schedule_type", pa.string()),
        ("steps", pa.int32()), ("cfg_scale", pa.float64()),
        ("width", pa.int32()), ("height", pa.int32()), ("clip_skip", pa.int32()),
        ("weight", pa.float64()), ("kind", pa.string()), ("poll_id", pa.int64()), ("source_mode", pa.string()),
    ])


COLUMNS = ("jpg_0", "jpg_1", "label_0", "label_1", "caption", "negative_prompt", "seed", "sampler", "schedule_type",
           "steps", "cfg_scale", "width", "height", "clip_skip", "weight", "kind", "poll_id", "source_mode")
META_COLUMNS = tuple(c for c in COLUMNS if c not in ("jpg_0", "jpg_1"))


@dataclass(frozen=True)
class PreferenceRow:
    jpg_0: bytes
    jpg_1: bytes
    label_0: float
    label_1: float
    caption: str
    poll_id: int
    kind: str = "pair"
    weight: float = 1.0
    source_mode: str = "fixed_duel"
    negative_prompt: str = ""
    seed: int = 0
    sampler: str = "Euler a"
    schedule_type: str = "Automatic"
    steps: int = 28
    cfg_scale: float = 6.0
    width: int = 1024
    height: int = 1024
    clip_skip: int = 1


def row_errors(row: PreferenceRow) -> list[str]:
    e = []
    if row.kind not in KINDS:
        e.append(f"kind must be one of {', '.join(KINDS)}, got {row.kind!r}")
    elif row.kind == "pair":
        if (row.label_0, row.label_1) not in ((1.0, 0.0), (0.0, 1.0)):
            e.append(f"a pair row needs labels (1, 0) or (0, 1), got ({row.label_0}, {row.label_1})")
    elif (row.label_0, row.label_1) != _LABELS[row.kind]:
        e.append(f"a {row.kind} row needs labels {_LABELS[row.kind]}, got ({row.label_0}, {row.label_1})")
    if not row.jpg_0 or not row.jpg_1:
        e.append("both images are needed (empty image bytes)")
    if not (row.weight > 0):
        e.append(f"weight must be above 0, got {row.weight}")
    if row.width < 8 or row.height < 8 or row.steps < 1 or row.clip_skip < 1 or row.seed < 0:
        e.append("width/height at least 8, steps and clip_skip at least 1, seed 0 or more")
    return e


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(rows: list[PreferenceRow]) -> list[PreferenceRow]:
    return sorted(rows, key=lambda r: (r.poll_id, KINDS.index(r.kind), _sha(r.jpg_0), _sha(r.jpg_1), r.label_0,
                                       r.weight, r.caption))


def counts_of(rows) -> dict:
    """{source_mode: {kind: rows}} with sorted keys."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        by_kind = out.setdefault(r.source_mode, {})
        by_kind[r.kind] = by_kind.get(r.kind, 0) + 1
    return {m: dict(sorted(k.items())) for m, k in sorted(out.items())}


def write_dataset(rows, path: str | os.PathLike, *, vote_log_hash: str, filters: dict | None = None) -> "DatasetInfo":
    """Write ``rows`` (PreferenceRow) to ``path`` as Parquet, atomically; the same rows give the same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = list(rows)
    for i, row in enumerate(rows):
        errors = row_errors(row)
        if errors:
            raise TrainingError(f"dataset row {i} (poll {row.poll_id}): {'; '.join(errors)}")
    rows = _canonical(rows)
    meta = {"format_version": FORMAT_VERSION, "vote_log_hash": str(vote_log_hash), "counts": counts_of(rows),
            "filters": filters or {}, "rows": len(rows)}
    sch = schema().with_metadata({"arena": json.dumps(meta, sort_keys=True)})
    table = pa.table({name: [getattr(r, name) for r in rows] for name in COLUMNS}, schema=sch)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".dataset-", suffix=".parquet", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_SIZE, compression="zstd", compression_level=3,
                       use_dictionary=["caption", "negative_prompt", "sampler", "schedule_type", "kind", "source_mode"],
                       write_statistics=["poll_id", "kind", "weight"], store_schema=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return read_dataset(path).info


@dataclass(frozen=True)
class DatasetInfo:
    path: str
    sha256: str
    rows: int
    vote_log_hash: str
    counts: dict
    filters: dict


@dataclass(frozen=True)
class Pair:
    """One ordered example: ``row``'s image ``first`` (the winner; for ties, image 0) against the other."""

    row: int
    first: int  # 0 or 1: which image of the row comes first
    label: float  # P(first is preferred): 1.0 for a pair, 0.5 for a tie
    weight: float
    poll_id: int


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class PreferenceDataset:
    """A dataset file opened for training: the small columns in memory, images read one row group at a time."""

    def __init__(self, path: str | os.PathLike, *, cache_groups: int = 8):
        import pyarrow.parquet as pq

        self.path = Path(path)
        if not self.path.is_file():
            raise TrainingError(f"dataset not found: {self.path}")
        try:
            self._file = pq.ParquetFile(str(self.path))
        except Exception as exc:
            raise TrainingError(f"unreadable dataset {self.path.name}: {type(exc).__name__}: {exc}") from None
        names = set(self._file.schema_arrow.names)
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise TrainingError(f"dataset {self.path.name} lacks column(s) {', '.join(missing)}")
        meta = (self._file.schema_arrow.metadata or {}).get(b"arena")
        self.meta = json.loads(meta) if meta else {}
        table = self._file.read(columns=list(META_COLUMNS))
        self.columns = {name: table.column(name).to_pylist() for name in META_COLUMNS}
        self._group_rows = [self._file.metadata.row_group(g).num_rows for g in range(self._file.num_row_groups)]
        self._starts = [sum(self._group_rows[:g]) for g in range(len(self._group_rows))]
        self._groups: OrderedDict[int, tuple] = OrderedDict()
        self._cache_groups = cache_groups
        self.sha256 = file_sha256(self.path)

    def __len__(self) -> int:
        return len(self.columns["kind"])

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(str(self.path), self.sha256, len(self), self.meta.get("vote_log_hash", ""),
                           self.meta.get("counts", {}), self.meta.get("filters", {}))

    def value(self, name: str, row: int):
        return self.columns[name][row]

    def images(self, row: int) -> tuple[bytes, bytes]:
        """The encoded bytes of (image 0, image 1) of ``row``."""
        if not 0 <= row < len(self):
            raise TrainingError(f"dataset row {row} out of range (0..{len(self) - 1})")
        g = max(i for i, s in enumerate(self._starts) if s <= row)
        if g not in self._groups:
            t = self._file.read_row_group(g, columns=["jpg_0", "jpg_1"])
            self._groups[g] = (t.column("jpg_0").to_pylist(), t.column("jpg_1").to_pylist())
            while len(self._groups) > self._cache_groups:
                self._groups.popitem(last=False)
        self._groups.move_to_end(g)
        a, b = self._groups[g]
        return a[row - self._starts[g]], b[row - self._starts[g]]

    def image(self, row: int, which: int) -> bytes:
        return self.images(row)[which]

    def pairs_for(self, method: str) -> list[Pair]:
        """The ordered examples ``method`` ("dpo", "reward") trains on; see the module docstring."""
        out = []
        c = self.columns
        for i, kind in enumerate(c["kind"]):
            if kind == "pair":
                out.append(Pair(i, 0 if c["label_0"][i] == 1.0 else 1, 1.0, c["weight"][i], c["poll_id"][i]))
            elif kind == "tie" and method == "reward":
                out.append(Pair(i, 0, 0.5, c["weight"][i], c["poll_id"][i]))
        return out

    def undesirable_for(self) -> list[tuple[int, int, float]]:
        """(row, image, weight) for each image of each both-bad row: the KTO term's undesirable examples."""
        c = self.columns
        return [(i, j, c["weight"][i]) for i, kind in enumerate(c["kind"]) if kind == "both_bad" for j in (0, 1)]

    def preferred_images(self) -> list[tuple[int, int, float]]:
        """(row, image, weight) of each distinct preferred image of the pair rows (weights of repeats summed)."""
        seen: dict[str, list] = {}
        for p in self.pairs_for("dpo"):
            key = _sha(self.image(p.row, p.first))
            if key in seen:
                seen[key][2] += p.weight
            else:
                seen[key] = [p.row, p.first, p.weight]
        return [tuple(v) for v in seen.values()]


def first_caption(path: str | os.PathLike) -> str:
    """The first non-empty caption of a dataset file (the sample prompt a run gets by default); "" if none."""
    import pyarrow.parquet as pq

    try:
        captions = pq.read_table(str(path), columns=["caption"]).column(0).to_pylist()
    except Exception:  # an unreadable file is reported by dataset_errors; no sample prompt here
        return ""
    return next((c.strip().splitlines()[0] for c in captions if c and c.strip()), "")


def read_dataset(path: str | os.PathLike) -> PreferenceDataset:
    return PreferenceDataset(path)


# the fewest usable rows each method trains on; the Django side may ask for more
MIN_EXAMPLES = {"dpo": 1, "sft": 1, "reward": 2}


def dataset_errors(path, method: str, *, kto_weight: float = 0.0, min_examples: int | None = None) -> list[str]:
    """Why the dataset at ``path`` cannot train ``method`` (one-line messages; empty: it can)."""
    try:
        ds = read_dataset(path)
    except TrainingError as exc:
        return [str(exc)]
    kinds = ds.columns["kind"]
    usable = sum(k == "pair" for k in kinds) + (sum(k == "tie" for k in kinds) if method == "reward" else 0)
    need = min_examples if min_examples is not None else MIN_EXAMPLES.get(method, 1)
    what = {"dpo": "pair rows (DPO uses no tie or both-bad rows)", "sft": "pair rows (their preferred images)",
            "reward": "pair or tie rows"}.get(method, "rows")
    errors = []
    if usable < need:
        errors.append(f"the dataset has {usable} {what}; {method} needs at least {need}")
    if method == "dpo" and kto_weight > 0 and "both_bad" not in kinds:
        errors.append("kto_weight is set but the dataset has no both-bad rows")
    return errors


__all__ = ["COLUMNS", "KINDS", "DatasetInfo", "Pair", "PreferenceDataset", "PreferenceRow", "dataset_errors",
           "read_dataset", "schema", "write_dataset"]
