"""Fuzzing every form and vote endpoint (issue 10): Hypothesis posts random and hostile values (Unicode digits,
5,000-digit numbers, control and format characters, markup, repeated keys, unknown fields, odd files) to the vote
form of all three poll modes, the free-prompt form, the query strings of the public pages, and the staff forms
(generation's, training's, the voter exclusion and the scorer button) as staff. No answer may be a 5xx, and input that is refused (4xx) changes nothing in the database."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import unicodedata

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arena import polltickets
from tests.arena.issued import token_in, voted
from arena.models import Mode, Poll, PollEntry
from generation.models import GenerationJob, GenerationTask, ModelVariant, Prompt, PromptSet
from tests.arena.factories import arena_with_images, make_image, make_prompt

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
#: Examples per endpoint: enough to meet each kind of hostile value several times, few enough for a quick suite.
EXAMPLES = 30
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

HOSTILE = st.sampled_from([
    "", " ", "0", "1", "2", "3", "4", "-1", "00", "²", "٣", "１", "1e3", "1.5", "0x1", "1_0", " 2", "2\n", "+1",
    "7" * 5000, "9" * 19, "18446744073709551616", "null", "None", "true", "NaN", "∞",
    "\x00", "1girl\x00", "\x85", "\u009b", "\u200b", "\u202e1girl", "\ufeff", "\ud7ff", "\U0010ffff",
    "<script>alert(1)</script>", "&amp;", "javascript:alert(1)", "' OR 1=1 --", "../../etc/passwd", "%00", "%s%s%n",
    "left", "right", "tie", "bothbad", "best", "ranking", "0,1,2,3", "3,2,1,0", "0,0,1,2", "0,1,2,3,0", ",,,",
    "A" * 20_000, "1girl, " * 300,
])
VALUE = st.one_of(HOSTILE, st.text(max_size=30), st.integers(min_value=-(10**30), max_value=10**30).map(str))
VALUES = st.lists(VALUE, min_size=1, max_size=3)  # more than one: the key is repeated


def form(fields: list[str], **plausible):
    """A form submission: any subset of ``fields`` (each with one or more values) plus, sometimes, an unknown field.
    ``plausible``: a strategy per field for the values that get a form past its first check (a vote's choice), so the
    hostile values of the other fields are read."""
    values = {name: st.one_of(plausible[name].map(lambda v: [v]), VALUES) if name in plausible else VALUES
              for name in fields}
    return st.fixed_dictionaries({}, optional={**values, "unexpected": VALUES})


# --- the database, before and after ------------------------------------------------------------------------------

_TABLES = [("arena", m) for m in ("Poll", "PollEntry", "Vote", "Rating", "LeaderboardSnapshot", "VoterExclusion")] + [
    ("generation", m) for m in ("ModelVariant", "Prompt", "PromptSet", "Character", "CharacterReference",
                                 "GenerationJob", "GenerationTask", "Image")] + [
    ("training", m) for m in ("PreferenceDataset", "TrainingRun")]


def snapshot() -> str:
    """A digest of every row of the tables the forms write."""
    digest = hashlib.sha256()
    for app, name in _TABLES:
        rows = apps.get_model(app, name).objects.order_by("pk").values_list()
        digest.update(json.dumps([name, list(rows)], default=str).encode())
    return digest.hexdigest()


def submit(client: Client, url: str, data: dict, *, method: str = "post", htmx: bool = False, then=None):
    """Send one submission; no 5xx, and a refusal (4xx) leaves every row as it was. Each submission is rolled back
    afterwards (``then(response)`` checks what it did first), so every one meets the same database."""
    with transaction.atomic():
        before = snapshot()
        extra = HX if htmx else {}
        response = client.post(url, data, **extra) if method == "post" else client.get(url, data, **extra)
        assert response.status_code < 500, (url, _short(data), response.status_code)
        if response.status_code >= 400:
            assert snapshot() == before, f"refused input changed the database: {url} {_short(data)!r}"
        if then is not None:
            then(response)
        transaction.set_rollback(True)
    return response


def _short(data: dict) -> dict:
    return {k: v if len(repr(v)) < 60 else repr(v)[:40] + "…" for k, v in data.items()}


# --- voters -----------------------------------------------------------------------------------------------------


@pytest.fixture
def arena_site(settings):
    settings.RATELIMIT_ENABLE = False
    settings.MIN_VOTE_SECONDS = 0.0
    settings.BT_BOOTSTRAP_ROUNDS = 5
    variants, _ = arena_with_images(n_models=4, n_prompts=2)
    for c in "AB":
        ModelVariant.objects.create(name=f"Live {c}", source_type=ModelVariant.SourceType.DIFFUSERS,
                                    source_path=f"/models/{c}", width=256, height=256)
    return variants


def _client_with_poll(mode: str) -> tuple[Client, str]:
    """A voter with a ready poll of ``mode`` (its token), issued by the poll page (a free duel as its worker leaves
    it: both images stored)."""
    client = Client()
    html = client.get(reverse("arena:ffa" if mode == Mode.FFA else "arena:fixed"), **HX).content.decode()
    token = token_in(html)
    if mode == Mode.FREE:
        voter = polltickets.decode(token).voter_key
        variants = list(ModelVariant.objects.exclude(source_type=ModelVariant.SourceType.NONE).order_by("id")[:2])
        prompt = make_prompt(f"1girl, free duel {Poll.objects.count()}", source=Prompt.Source.FREE)
        now = timezone.now()
        poll = Poll.objects.create(mode=Mode.FREE, voter_key=voter, prompt=prompt, status=Poll.Status.READY,
                                   shown_at=now, expires_at=now + dt.timedelta(minutes=15))
        for position, variant in enumerate(variants):
            PollEntry.objects.create(poll=poll, position=position, variant=variant, image=make_image(variant, prompt))
        token = str(poll.token)
    return client, token


@FUZZ
@given(mode=st.sampled_from([Mode.FIXED, Mode.FFA, Mode.FREE]),
       data=form(["choice", "best", "ranking", "place_0", "place_1", "place_2", "place_3"],
                 choice=st.sampled_from(["left", "right", "tie", "bothbad", "best", "ranking"])),
       htmx=st.booleans())
def test_the_vote_form_takes_anything_without_a_5xx(arena_site, mode, data, htmx):
    client, token = _client_with_poll(mode)

    def voted_only_if_accepted(response):
        assert voted(token) == (response.status_code == 200)

    submit(client, reverse("arena:vote", args=[token]), data, htmx=htmx, then=voted_only_if_accepted)


@FUZZ
@given(data=form(["prompt", "prompt_id"]), htmx=st.booleans())
def test_the_free_prompt_form_takes_anything_without_a_5xx(arena_site, data, htmx):
    tasks = GenerationTask.objects.count()

    def clean_duel_if_accepted(response):
        if response.status_code == 200:  # a duel: two images to generate, from a clean prompt
            assert GenerationTask.objects.count() == tasks + 2
            prompt = Prompt.objects.order_by("-id").first()
            assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in prompt.text.replace("\n", "").replace("\t", ""))

    submit(Client(), reverse("arena:free"), data, htmx=htmx, then=clean_duel_if_accepted)


@FUZZ
@given(page=st.sampled_from(["arena:leaderboard", "arena:leaderboard_reports", "arena:vote_battles", "arena:vote_jsonl",
                             "arena:free", "arena:fixed", "arena:ffa", "arena:stats", "scoring:characters"]),
       data=form(["scope", "sort", "inline", "download", "model", "format"]), htmx=st.booleans())
def test_the_public_pages_take_any_query_string_without_a_5xx(arena_site, page, data, htmx):
    submit(Client(), reverse(page), data, method="get", htmx=htmx)


# --- staff ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def staff(settings):
    settings.RATELIMIT_ENABLE = False
    client = Client()
    client.force_login(get_user_model().objects.create_user("fuzz-admin", is_staff=True))
    variants = [ModelVariant.objects.create(name=f"Staff {c}", source_type=ModelVariant.SourceType.DIFFUSERS,
                                            source_path=f"/models/{c}") for c in "AB"]
    prompt_set = PromptSet.objects.create(name="fuzz set")
    Prompt.objects.create(text="1girl, fuzz", prompt_set=prompt_set)
    job = GenerationJob.objects.create(name="fuzz job")
    return {"client": client, "variants": variants, "prompt_set": prompt_set, "job": job}


REAL_OR_HOSTILE = st.one_of(VALUES, st.just(["REAL"]))


def _fill(data: dict, real: dict) -> dict:
    """Put real ids where the strategy asked for them ("REAL")."""
    return {k: [real.get(k, "1") if v == "REAL" else v for v in values] for k, values in data.items()}


@FUZZ
@given(data=st.fixed_dictionaries({}, optional={
    **{name: VALUES for name in ("name", "prompt_text", "seeds", "sampler", "steps", "cfg_scale", "width", "height",
                                 "clip_skip", "negative_prompt", "unexpected")},
    "variants": REAL_OR_HOSTILE, "prompt_set": REAL_OR_HOSTILE}), htmx=st.booleans())
def test_the_job_form_takes_anything_without_a_5xx(staff, data, htmx):
    real = {"variants": str(staff["variants"][0].pk), "prompt_set": str(staff["prompt_set"].pk)}
    submit(staff["client"], reverse("generation:jobs"), _fill(data, real), htmx=htmx)


FILES = st.one_of(
    st.binary(max_size=2000),
    st.sampled_from([b"", b"\x00\x00", b"1girl\x00smile\n", b"\xff\xfe1girl", b"\xef\xbb\xbfprompt\n1girl",
                     b"prompt,negative_prompt\n\"unterminated\n", b"prompt\n" + b"x" * 6000, b"1girl\n" * 6000,
                     b"prompt,character\n1girl," + b"c" * 300, "1girl, caf\u00e9\u200b\n".encode(),
                     b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, b"GIF89a" + b"\x00" * 20]),
)


@FUZZ
@given(data=form(["name", "description", "negative_prompt"]), content=FILES,
       filename=st.sampled_from(["prompts.txt", "prompts.csv", "x", "../../evil.csv", "p\x00.txt", "\u202etxt.csv"]))
def test_the_prompt_set_import_takes_anything_without_a_5xx(staff, data, content, filename):
    submit(staff["client"], reverse("generation:prompt_sets"), {**data, "file": SimpleUploadedFile(filename, content)})


@FUZZ
@given(data=form(["name", "tags"]), content=FILES, with_file=st.booleans())
def test_the_character_form_takes_anything_without_a_5xx(staff, data, content, with_file):
    files = {"image": SimpleUploadedFile("ref.png", content, content_type="image/png")} if with_file else {}
    submit(staff["client"], reverse("generation:characters"), {**data, **files})


@FUZZ
@given(action=st.sampled_from(["generation:job_cancel", "generation:job_retry"]), data=form(["id", "status"]),
       query=form(["model"]), htmx=st.booleans())
def test_the_job_actions_and_image_filter_take_anything_without_a_5xx(staff, action, data, query, htmx):
    submit(staff["client"], reverse(action, args=[staff["job"].pk]), data, htmx=htmx)
    submit(staff["client"], reverse("generation:images"), query, method="get", htmx=htmx)


# --- every field meets every kind of hostile value at least once -------------------------------------------------
# Random combinations find the unexpected; this sweep makes sure each field of each endpoint gets each known-bad
# kind of value (alone, the rest of the form valid), whatever the random draw.

SWEEP = ["²", "٣", "7" * 5000, "9" * 19, "-1", "", "1e3", " 2", "\x00", "1girl\x85\u202e", "A" * 20_000,
         "<script>alert(1)</script>"]


def _sweep(client: Client, url: str, base: dict, fields: list[str], *, method: str = "post") -> None:
    for field in fields:
        for value in SWEEP + [[SWEEP[0], "1"]]:  # the last: the field given twice
            submit(client, url, {**base, field: value}, method=method)


def test_every_vote_field_meets_every_hostile_value(arena_site):
    fixed, ffa, free = (_client_with_poll(mode) for mode in (Mode.FIXED, Mode.FFA, Mode.FREE))
    for (client, token), base, fields in [
        (fixed, {}, ["choice"]), (free, {}, ["choice"]),
        (ffa, {"choice": "best"}, ["best"]), (ffa, {"choice": "ranking"}, ["ranking"]),
        (ffa, {"choice": "ranking", "place_0": "1", "place_1": "2", "place_2": "3", "place_3": "4"},
         ["place_0", "place_1", "place_2", "place_3"]),
    ]:
        _sweep(client, reverse("arena:vote", args=[token]), base, fields)


def test_every_free_form_and_query_field_meets_every_hostile_value(arena_site):
    _sweep(Client(), reverse("arena:free"), {}, ["prompt", "prompt_id"])
    for page, fields in [("arena:leaderboard", ["scope", "sort"]), ("arena:leaderboard_reports", ["scope"]),
                         ("arena:vote_battles", ["scope", "inline"]), ("arena:vote_jsonl", ["scope"])]:
        _sweep(Client(), reverse(page), {}, fields, method="get")
    _sweep(Client(), reverse("arena:leaderboard_export", args=["csv"]), {}, ["scope", "inline"], method="get")
    _sweep(Client(), reverse("arena:leaderboard_plot", args=["ratings", "svg"]), {}, ["scope", "download", "size"],
           method="get")


def test_every_staff_form_field_meets_every_hostile_value(staff):
    client = staff["client"]
    job = {"variants": str(staff["variants"][0].pk), "prompt_text": "1girl", "seeds": "1"}
    _sweep(client, reverse("generation:jobs"), job, ["name", "variants", "prompt_set", "prompt_text", "seeds",
                                                     "sampler", "steps", "cfg_scale", "width", "height", "clip_skip",
                                                     "negative_prompt"])
    for field in ("name", "description", "negative_prompt"):
        for value in SWEEP:
            upload = SimpleUploadedFile("prompts.txt", b"1girl, sweep")
            submit(client, reverse("generation:prompt_sets"), {"name": "sweep", "file": upload, field: value})
    for value in SWEEP:
        submit(client, reverse("generation:prompt_sets"), {"name": "sweep", "file": SimpleUploadedFile("p.txt", value.encode())})
        submit(client, reverse("generation:characters"), {"name": value, "tags": value})
    _sweep(client, reverse("generation:images"), {}, ["model"], method="get")


def test_every_training_and_stats_form_field_meets_every_hostile_value(staff, settings, tmp_path):
    from training.forms import SETTINGS
    from training.models import PreferenceDataset

    settings.TRAINING_DIR = tmp_path / "training"
    client = staff["client"]
    dataset = PreferenceDataset.objects.create(name="fuzz votes", path=str(tmp_path / "none.parquet"), sha256="0" * 64,
                                               rows=12)
    for method in ("dpo", "sft", "reward"):
        base = {"method": method, "dataset": str(dataset.pk), "parent": str(staff["variants"][0].pk)}
        names = ["method", "parent", "dataset", "allow_finetune_parent"] + [n for n, *_rest, used in SETTINGS if method in used]
        _sweep(client, reverse("training:run_new"), base, names)
    _sweep(client, reverse("training:datasets"), {"modes": "fixed"},
           ["name", "modes", "date_from", "date_to", "models", "prompt_sets", "exclude_flagged", "exclude_flagged_voters"])
    _sweep(client, reverse("training:lora_enroll"), {"name": "fuzz child", "parent": str(staff["variants"][0].pk),
                                                    "path": str(tmp_path / "x.safetensors")},
           ["name", "parent", "path", "note"])
    for value in SWEEP:
        upload = SimpleUploadedFile("lora.safetensors", value.encode("utf-8", "surrogatepass"))
        submit(client, reverse("training:lora_enroll"), {"name": "fuzz upload", "upload": upload})
    _sweep(client, reverse("training:run_new"), {}, ["method", "parent", "dataset"], method="get")
    _sweep(client, reverse("arena:voter_exclusion"), {"reason": "fuzz"}, ["judge", "reason", "action"])
    submit(client, reverse("scoring:enqueue"), {"unexpected": "1"})
