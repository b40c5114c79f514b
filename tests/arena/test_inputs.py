"""Every input parsed strictly (issue 10): integers are ASCII digits with a length cap, a parameter given twice is
refused, prompts refuse control and format characters and are stored NFC; bad input is a 400 with a message and
changes nothing."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import unicodedata

import pytest
from django.http import QueryDict
from django.urls import reverse

from arena import inputs, services
from arena.errors import InvalidChoice, PromptRejected
from tests.arena.issued import stored, token_in
from arena.models import Poll, Rating, Vote
from generation.models import GenerationTask, ModelVariant, Prompt

HX = {"HTTP_HX_REQUEST": "true"}
HUGE = "7" * 5000  # int() of more than 4,300 digits raises ValueError


def _q(**values) -> QueryDict:
    q = QueryDict(mutable=True)
    for key, value in values.items():
        q.setlist(key, value if isinstance(value, list) else [value])
    return q


@pytest.mark.parametrize("text", ["²", "٣", "１", " 1", "1 ", "1\n", "+1", "1_0", "0x1", "1.0", "", "-", HUGE, "1e3"])
def test_int_clean_takes_ascii_digits_only(text):
    with pytest.raises(inputs.InputError) as info:
        inputs.int_clean(text, name="n")
    assert "n must be" in info.value.message and len(info.value.message) < 200


def test_int_clean_bounds_and_negatives():
    assert inputs.int_clean("0042", name="n") == 42
    assert inputs.int_clean("-3", name="n", minimum=-5) == -3
    with pytest.raises(inputs.InputError):
        inputs.int_clean("-3", name="n")  # minimum 0: no sign at all
    with pytest.raises(inputs.InputError, match="from 1 to 4"):
        inputs.int_clean("5", name="n", minimum=1, maximum=4)
    with pytest.raises(inputs.InputError):
        inputs.int_clean("1" * 19, name="n")  # more digits than an id has


def test_a_parameter_given_twice_is_refused():
    with pytest.raises(inputs.InputError, match="given 2 times"):
        inputs.single(_q(offset=["null", "null"]), "offset")
    assert inputs.single(_q(), "offset") is None and inputs.single(_q(offset="3"), "offset") == "3"


@pytest.mark.parametrize("post, expected", [
    ({"choice": "left"}, inputs.VoteInput("left")),
    ({"choice": "best", "best": "3"}, inputs.VoteInput("best", best=3)),
    ({"choice": "ranking", "ranking": "2, 0,3,1"}, inputs.VoteInput("ranking", ranking=[2, 0, 3, 1])),
    ({"choice": "ranking", "place_0": "2", "place_1": "4", "place_2": "1", "place_3": "3"},
     inputs.VoteInput("ranking", ranking=[2, 0, 3, 1])),
])
def test_vote_form_parses(post, expected):
    assert inputs.vote_input_clean(_q(**post)) == expected


@pytest.mark.parametrize("post", [
    {"choice": "best", "best": "²"}, {"choice": "best", "best": HUGE}, {"choice": "best", "best": "4"},
    {"choice": "best", "best": ["1", "2"]}, {"choice": "best"},
    {"choice": "ranking", "ranking": "²,0,1,2"}, {"choice": "ranking", "ranking": HUGE},
    {"choice": "ranking", "ranking": "0,1,2,3,0"}, {"choice": "ranking", "ranking": "0;1;2;3"},
    {"choice": "ranking", "place_0": "²"}, {"choice": "ranking", "place_0": HUGE},
    {"choice": "ranking", "place_0": "1", "place_1": "1", "place_2": "2", "place_3": "3"},
    {"choice": ["left", "right"]},
])
def test_malformed_vote_forms_are_refused_with_a_message(post):
    with pytest.raises(InvalidChoice) as info:
        inputs.vote_input_clean(_q(**post))
    assert info.value.status == 400 and info.value.message


def test_prompt_id_clean():
    assert inputs.prompt_id_clean(None) is None and inputs.prompt_id_clean("") is None
    assert inputs.prompt_id_clean("12") == 12
    for bad in ("²", HUGE, "0", "-1", "1.5"):
        with pytest.raises(PromptRejected, match="not in the pool"):
            inputs.prompt_id_clean(bad)


def test_command_integers_are_strict():
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--n", type=inputs.cli_int(minimum=1))
    parser.add_argument("--x", type=inputs.cli_float(minimum=0.0))
    assert parser.parse_args(["--n", "3", "--x", "0.5"]).n == 3
    for args in (["--n", "٣"], ["--n", "1_000"], ["--n", "0"], ["--n", HUGE], ["--x", "nan"], ["--x", "inf"], ["--x", "1e999"]):
        with pytest.raises(argparse.ArgumentError):
            parser.parse_args(args)


# --- through the views: the seven inputs that gave a 500 -------------------------------------------------------------


def _ffa_poll(client) -> str:
    """An issued free-for-all poll's token (its ticket)."""
    return token_in(client.get(reverse("arena:ffa"), **HX).content.decode())


@pytest.mark.django_db
@pytest.mark.parametrize("data", [
    {"choice": "best", "best": "²"}, {"choice": "best", "best": HUGE},
    {"choice": "ranking", "ranking": "²"}, {"choice": "ranking", "ranking": HUGE},
    {"choice": "ranking", "place_0": "²"}, {"choice": "ranking", "place_0": HUGE},
])
def test_bad_numbers_in_a_vote_are_a_400_and_change_nothing(client, arena, no_rate_limits, settings, data):
    settings.MIN_VOTE_SECONDS = 0.0
    token = _ffa_poll(client)
    response = client.post(reverse("arena:vote", args=[token]), data, **HX)
    assert response.status_code == 400 and b"image" in response.content
    assert not Vote.objects.exists() and not Rating.objects.exists() and stored(token) is None
    ok = client.post(reverse("arena:vote", args=[token]), {"choice": "best", "best": "2"}, **HX)
    assert ok.status_code == 200 and Vote.objects.get().ranks == [1, 1, 0, 1]


@pytest.mark.django_db
@pytest.mark.parametrize("prompt_id", ["²", HUGE, "-1", "0x10"])
def test_a_bad_prompt_id_on_the_free_page_is_a_400_and_changes_nothing(client, no_rate_limits, prompt_id):
    for c in "AB":
        ModelVariant.objects.create(name=f"Live {c}", source_type=ModelVariant.SourceType.DIFFUSERS, source_path=f"/m/{c}")
    response = client.post(reverse("arena:free"), {"prompt_id": prompt_id}, **HX)
    assert response.status_code == 400 and b"not in the pool" in response.content
    assert not Poll.objects.exists() and not Prompt.objects.exists() and not GenerationTask.objects.exists()


# --- prompts --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9b", "\u200b", "\u200e", "\u202e", "\u2066",
                                  "\ufeff", "\u00ad", "\U000e0001", "\ud800"])
def test_prompts_refuse_control_and_format_characters(char):
    assert unicodedata.category(char) in ("Cc", "Cf", "Cs")
    for text in (f"1girl{char}smile", f"1girl, smile{char}", f"{char}1girl"):
        with pytest.raises(PromptRejected) as info:
            services.free_prompt_clean(text)
        assert f"U+{ord(char):04X}" in info.value.message


def test_prompts_keep_tabs_and_newlines_and_are_stored_nfc():
    assert services.free_prompt_clean("1girl,\tsmile\r\nBREAK\rsky") == "1girl,\tsmile\nBREAK\nsky"
    decomposed = "cafe\u0301, 1girl"
    cleaned = services.free_prompt_clean(decomposed)
    assert cleaned == "caf\u00e9, 1girl" and unicodedata.is_normalized("NFC", cleaned)


def test_blocklist_matches_full_width_and_case_folded_words(settings):
    settings.FREE_PROMPT_BLOCKLIST = ["forbidden"]
    for text in ("1girl, ＦＯＲＢＩＤＤＥＮ", "1girl, FORBIDDEN", "1girl, forbiddeN"):
        with pytest.raises(PromptRejected):
            services.free_prompt_clean(text)


def test_an_enormous_prompt_is_refused_before_any_per_character_work(settings):
    with pytest.raises(PromptRejected, match="too long"):
        services.free_prompt_clean("\u200b" * (10 * settings.FREE_PROMPT_MAX_CHARS))


@pytest.mark.django_db
def test_a_refused_prompt_through_the_form_changes_nothing(client, no_rate_limits):
    for c in "AB":
        ModelVariant.objects.create(name=f"Live {c}", source_type=ModelVariant.SourceType.DIFFUSERS, source_path=f"/m/{c}")
    response = client.post(reverse("arena:free"), {"prompt": "1girl\u0085smile"}, **HX)
    assert response.status_code == 400 and b"U+0085" in response.content
    assert not Prompt.objects.exists() and not Poll.objects.exists() and not GenerationTask.objects.exists()
    twice = client.post(reverse("arena:free"), {"prompt": ["1girl", "1boy"]}, **HX)
    assert twice.status_code == 400 and not Prompt.objects.exists()
