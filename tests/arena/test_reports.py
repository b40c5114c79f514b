import csv
import dataclasses
import datetime as dt
import io
import json
import math
import random

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework.authtoken.models import Token

from arena import errors, exports, health, inputs, rating_settings, voters
from arena.selectors import votelog
from arena.services import leaderboards
from arena.models import LeaderboardSnapshot, Mode, Vote
from ratings import intervals
from ratings.battles import parse_clean_battles, write_battles, clean_battles
from ratings.leaderboard import compute_leaderboard
from ratings.log import records_from_jsonl, vote_log_hash
from ratings.outcomes import pairwise
from tests.arena.votelog import cast, small_log

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _quick_bootstrap(settings):
    settings.BT_BOOTSTRAP_ROUNDS = 20
    settings.BT_BOOTSTRAP_SEED = 7


@pytest.fixture
def log(db):
    return small_log()


def _staff(client):
    user = get_user_model().objects.create_user("boss", password="pw-123456789", is_staff=True)
    client.force_login(user)
    return user


# --- stored leaderboards ----------------------------------------------------------------------------------------


def test_leaderboard_compute_stores_the_parameters_and_the_hash_of_the_vote_log(log):
    models, votes = log
    snapshot = leaderboards.leaderboard_compute(scope="overall")
    assert LeaderboardSnapshot.objects.count() == 1
    records = votelog.vote_records("overall")
    # A record's id is the vote's place in the replay order (``seq``), not its primary key: on PostgreSQL
    # the key sequence does not restart between tests, and ids are not the order ratings were applied in.
    seqs = dict(Vote.objects.values_list("id", "seq"))
    in_cast_order = [seqs[v.id] for v in sorted(votes, key=lambda v: (v.created_at, v.id))]
    assert [r.id for r in records] == in_cast_order and in_cast_order == sorted(in_cast_order)
    assert snapshot.vote_log_hash == vote_log_hash(records) and len(snapshot.vote_log_hash) == 64
    assert snapshot.vote_count == len(votes) == 15
    assert snapshot.params["bt"]["rounds"] == 20 and snapshot.params["bt"]["seed"] == 7
    assert snapshot.params["elo"]["k"] == 4.0 and snapshot.params["trueskill"]["mu"] == 25.0
    expected = compute_leaderboard(
        records, scope="overall", elo=rating_settings.elo_params(), trueskill=rating_settings.trueskill_params(), bt=rating_settings.bt_params()
    )
    stored = LeaderboardSnapshot.objects.get()
    assert stored.rows == [r.as_dict() for r in expected]
    assert {r["model"] for r in stored.rows} == {m.id for m in models}
    for row in stored.rows:
        assert row["bt_lo"] <= row["bt"] <= row["bt_hi"] and row["rank"] >= 1
        assert math.isclose(row["conservative"], row["ts_mu"] - 3 * row["ts_sigma"])
    assert stored.rows[0]["model"] == models[0].id  # model A wins nearly everything


def test_leaderboard_snapshot_is_reused_until_the_log_or_the_parameters_change(log, settings):
    models, votes = log
    first = leaderboards.leaderboard_compute(scope="overall")
    assert leaderboards.leaderboard_compute(scope="overall").id == first.id
    assert LeaderboardSnapshot.objects.count() == 1
    cast((models[1], models[0]), "left")
    second = leaderboards.leaderboard_compute(scope="overall")
    assert second.id != first.id and second.vote_count == first.vote_count + 1
    Vote.objects.filter(id=votes[0].id).update(counted=False)  # moderation takes a vote out
    third = leaderboards.leaderboard_compute(scope="overall")
    assert third.vote_count == second.vote_count - 1 and third.vote_log_hash != second.vote_log_hash
    settings.BT_BOOTSTRAP_ROUNDS = 10
    fourth = leaderboards.leaderboard_compute(scope="overall")
    assert fourth.id != third.id and fourth.params["bt"]["rounds"] == 10
    assert LeaderboardSnapshot.objects.count() == 4


def test_a_mode_scope_is_computed_from_that_mode_only(log):
    fixed = leaderboards.leaderboard_compute(scope=Mode.FIXED)
    ffa = leaderboards.leaderboard_compute(scope=Mode.FFA)
    assert fixed.vote_count == 12 and ffa.vote_count == 2
    assert fixed.vote_log_hash == vote_log_hash(r for r in votelog.vote_records("overall") if r.mode == "fixed")
    assert sum(r["votes"] for r in ffa.rows) == 8


def test_page_views_reuse_a_fresh_snapshot_with_three_queries(log, django_assert_max_num_queries):
    leaderboards.leaderboard_current(scope="overall")
    with django_assert_max_num_queries(3):
        board = leaderboards.leaderboard_current(scope="overall")
    assert not board.stale and board.rows[0]["model"] == "Model A"
    assert LeaderboardSnapshot.objects.count() == 1


def test_a_recent_snapshot_is_served_stale_then_recomputed(log, settings):
    models, _ = log
    settings.LEADERBOARD_REFRESH_SECONDS = 3600
    first = leaderboards.leaderboard_current(scope="overall")
    cast((models[3], models[0]), "left")
    board = leaderboards.leaderboard_current(scope="overall")
    assert board.stale and board.votes_behind == 1 and board.snapshot.id == first.snapshot.id
    settings.LEADERBOARD_REFRESH_SECONDS = 0
    board = leaderboards.leaderboard_current(scope="overall")
    assert not board.stale and board.snapshot.vote_count == first.snapshot.vote_count + 1


def test_empty_log_gives_an_empty_board(db):
    board = leaderboards.leaderboard_current(scope="free")
    assert board.rows == [] and board.snapshot.vote_count == 0
    assert exports.leaderboard_csv(board).strip() == ",".join(exports.COLUMNS)


def test_unknown_scope_is_refused():
    with pytest.raises(errors.ReportError):
        inputs.scope_clean("bogus")


# --- leaderboard page -------------------------------------------------------------------------------------------


def test_leaderboard_page_shows_bt_intervals_rank_plots_and_downloads(client, log, settings):
    settings.ARENA_PUBLIC_VOTE_LOG = False
    html = client.get(reverse("arena:leaderboard")).content.decode()
    snapshot = LeaderboardSnapshot.objects.get(scope="overall")
    # one ranking: the Bradley–Terry table with its intervals (no second table ranked another way)
    assert html.count("<table") == 1 and "95% bootstrap intervals" in html
    top = snapshot.rows[0]
    first_row = html.split("<tbody>")[1].split("</tr>")[0]
    assert f'<td class="col-rank">{top["rank"]}</td>' in first_row and f"{top['bt']:.1f}" in first_row
    assert f"{top['bt']:.1f}" in html and f"{top['bt_lo']:.1f} – {top['bt_hi']:.1f}" in html
    assert snapshot.vote_log_hash[:12] in html
    assert "/leaderboard/export.csv?scope=overall" in html and "/leaderboard/export.md?scope=overall" in html
    for kind in ("ratings", "winrate", "battles", "elo_over_time", "votes_per_day"):
        assert f"/leaderboard/plots/{kind}.svg?scope=overall" in html
        assert f"/leaderboard/plots/{kind}.png?scope=overall&amp;download=1" in html
        # a phone (the page's narrow layout) is served the narrow drawing, a wider screen the desktop one
        assert (f'<source media="(max-width: 600px)" srcset="/leaderboard/plots/{kind}.svg?scope=overall'
                f'&amp;size=phone">') in html
    assert "/leaderboard/battles.json" not in html  # a site that keeps its vote log for staff hides the link
    assert 'href="/stats/"' in html


def test_leaderboard_reports_partial_and_page(client, log):
    partial = client.get(reverse("arena:leaderboard_reports") + "?scope=ffa", **HX)
    assert partial.status_code == 200
    body = partial.content.decode()
    assert "<html" not in body and 'data-scope="ffa"' in body
    assert LeaderboardSnapshot.objects.filter(scope="ffa").count() == 1
    page = client.get(reverse("arena:leaderboard_reports") + "?scope=ffa")
    assert "<html" in page.content.decode() and "Free-for-all" in page.content.decode()
    assert client.get(reverse("arena:leaderboard_reports") + "?scope=nope").status_code == 400


def test_leaderboard_page_query_count_with_a_fresh_snapshot(client, log, django_assert_max_num_queries):
    client.get(reverse("arena:leaderboard"))
    # snapshot, log fingerprint, model names, unrated models, vote counts, automatic scores' freshness checks (2)
    with django_assert_max_num_queries(8):  # 7 today
        response = client.get(reverse("arena:leaderboard"))
    assert response.status_code == 200 and b"95% bootstrap intervals" in response.content
    assert LeaderboardSnapshot.objects.count() == 1


def test_staff_see_the_vote_log_downloads(client, log):
    _staff(client)
    html = client.get(reverse("arena:leaderboard") + "?scope=fixed").content.decode()
    assert "/leaderboard/battles.json?scope=fixed" in html and "/leaderboard/votes.jsonl?scope=fixed" in html


# --- leaderboard exports ----------------------------------------------------------------------------------------


def test_leaderboard_exports_in_csv_json_and_markdown(client, log):
    models, _ = log
    url = reverse("arena:leaderboard_export", args=["csv"]) + "?scope=overall"
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert 'filename="leaderboard-overall.csv"' in response["Content-Disposition"]
    snapshot = LeaderboardSnapshot.objects.get(scope="overall")
    assert response["X-Vote-Log-Hash"] == snapshot.vote_log_hash
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [int(r["model_id"]) for r in rows] == [r["model"] for r in snapshot.rows]
    assert rows[0]["model"] == "Model A" and float(rows[0]["bt"]) == snapshot.rows[0]["bt"]
    assert float(rows[0]["bt_lo"]) == snapshot.rows[0]["bt_lo"] and int(rows[0]["rank"]) == snapshot.rows[0]["rank"]

    doc = json.loads(client.get(reverse("arena:leaderboard_export", args=["json"]) + "?scope=overall").content)
    assert doc["vote_log_hash"] == snapshot.vote_log_hash and doc["vote_count"] == 15
    assert doc["params"] == snapshot.params
    assert [r["model_id"] for r in doc["rows"]] == [r["model"] for r in snapshot.rows]
    assert doc["rows"][0]["twa_elo"] == snapshot.rows[0]["twa_elo"]

    md = client.get(reverse("arena:leaderboard_export", args=["md"]) + "?scope=overall").content.decode()
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| Rank | Model | BT | 95% CI") and len(table) == 1 + len(models)
    assert snapshot.vote_log_hash in md and "| Model A |" in md
    assert LeaderboardSnapshot.objects.count() == 1  # all three from one snapshot


def test_bad_export_requests_are_clear_400s(client, log):
    bad_format = client.get(reverse("arena:leaderboard_export", args=["xlsx"]) + "?scope=overall")
    assert bad_format.status_code == 400 and b"Unknown format" in bad_format.content
    bad_scope = client.get(reverse("arena:leaderboard_export", args=["csv"]) + "?scope=everything")
    assert bad_scope.status_code == 400 and b"Unknown scope" in bad_scope.content
    assert client.get("/leaderboard/battles.json?scope=x").status_code == 400
    assert LeaderboardSnapshot.objects.count() == 0


# --- vote log exports -----------------------------------------------------------------------------------------------


def test_vote_log_downloads_need_staff_or_a_token_when_the_log_is_not_public(client, log, settings):
    settings.ARENA_PUBLIC_VOTE_LOG = False
    assert client.get("/leaderboard/battles.json").status_code == 401
    assert client.get("/leaderboard/votes.jsonl").status_code == 401
    assert client.get("/leaderboard/votes.jsonl", HTTP_AUTHORIZATION="Token not-a-token").status_code == 401
    reader = get_user_model().objects.create_user("reader", password="pw-123456789")
    token = Token.objects.create(user=reader)
    response = client.get("/leaderboard/votes.jsonl", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    client.force_login(reader)  # logged in but not staff
    assert client.get("/leaderboard/battles.json").status_code == 401
    settings.ARENA_PUBLIC_VOTE_LOG = True
    assert client.get("/leaderboard/battles.json").status_code == 200


def test_clean_battles_parse_back_into_the_same_duels(client, log):
    models, votes = log
    _staff(client)
    response = client.get("/leaderboard/battles.json?scope=fixed")
    assert response.status_code == 200 and 'filename="battles-fixed.json"' in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    battles = json.loads(text)
    assert len(battles) == 12
    assert {b["winner"] for b in battles} == {"model_a", "model_b", "tie", "tie (bothbad)"}
    assert all(b["anony"] is True for b in battles)
    judge = voters.voter_hash("a" * 32)
    assert {b["judge"] for b in battles} == {judge} and "a" * 32 not in text and "ip-" not in text
    parsed = parse_clean_battles(text, {m.name: m.id for m in models}, mode="fixed")

    def duel(r):  # the battle format keeps the duel itself; the poll it answered is in poll_id (checked below)
        return dataclasses.replace(r, poll=None, propensity=None)

    assert [duel(r) for r in parsed] == [duel(r) for r in votelog.vote_records("fixed")]
    assert [b["poll_id"] for b in battles] == [r.poll for r in votelog.vote_records("fixed")]
    # the same text the ratings package writes for this log
    log_ = votelog.vote_log("fixed")
    buf = io.StringIO()
    write_battles(buf, clean_battles(log_.records, log_.names, judges=log_.judges))
    assert buf.getvalue() == text


def test_free_for_all_battles_are_its_pairwise_results(client, log):
    models, _ = log
    _staff(client)
    battles = json.loads(b"".join(client.get("/leaderboard/battles.json?scope=ffa").streaming_content))
    records = votelog.vote_records("ffa")
    expected = [(a, b, s) for r in records for a, b, s in pairwise(r.outcome)]
    ids = {m.name: m.id for m in models}
    score = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5}
    assert [(ids[b["model_a"]], ids[b["model_b"]], score[b["winner"]]) for b in battles] == expected
    assert battles[0]["question_id"] == f"{records[0].id}.0"
    assert len(battles) == 3 + 6  # best-of-four: 3 pairs; full ranking of four: 6 pairs


def test_jsonl_parses_back_into_the_same_votes(client, log):
    models, votes = log
    _staff(client)
    text = b"".join(client.get("/leaderboard/votes.jsonl?scope=overall").streaming_content).decode()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 15
    assert records_from_jsonl(text) == votelog.vote_records("overall")
    seqs = dict(Vote.objects.values_list("id", "seq"))
    by_id = {seqs[v.id]: v for v in votes}  # an exported vote's id is its place in the replay order
    names = {m.id: m.name for m in models}
    for line in lines:
        vote = by_id[line["id"]]
        assert line["mode"] == vote.mode and line["choice"] == vote.choice and line["ranks"] == vote.ranks
        assert line["models"] == [names[i] for i in vote.variants]
        assert line["tstamp"] == vote.created_at.timestamp()
        assert line["judge"] == voters.voter_hash(vote.voter_key)
    assert "a" * 32 not in text and "ip-" not in text
    assert lines[-1]["choice"] == "ranking" and lines[-1]["full_ranking"] is True


def test_uncounted_votes_stay_out_of_the_exports(client, log):
    models, _ = log
    flagged = cast((models[2], models[0]), "left", flagged=True)
    _staff(client)
    text = b"".join(client.get("/leaderboard/votes.jsonl").streaming_content).decode()
    assert str(flagged.id) not in [line.split('"id": ')[1].split(",")[0] for line in text.splitlines()]


# --- plots ----------------------------------------------------------------------------------------------------------


def test_plots_render_as_png_and_svg_and_come_from_the_cache(client, log, monkeypatch):
    from arena import plots

    for kind in plots.PLOTS:
        response = client.get(reverse("arena:leaderboard_plot", args=[kind, "png"]) + "?scope=overall")
        assert response.status_code == 200 and response["Content-Type"] == "image/png", kind
        assert response.content.startswith(b"\x89PNG\r\n\x1a\n") and len(response.content) > 2000
    svg = client.get(reverse("arena:leaderboard_plot", args=["winrate", "svg"]) + "?scope=fixed&download=1")
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml"
    assert b"<svg" in svg.content and 'filename="winrate-fixed.svg"' in svg["Content-Disposition"]

    def fail(*args, **kwargs):
        raise AssertionError("drawn again although the log did not change")

    monkeypatch.setattr(plots, "render", fail)
    again = client.get(reverse("arena:leaderboard_plot", args=["ratings", "png"]) + "?scope=overall")
    assert again.status_code == 200 and again.content.startswith(b"\x89PNG")
    assert LeaderboardSnapshot.objects.count() == 2  # overall and fixed


def test_plot_data_matches_the_log(log):
    from arena import plots

    board = leaderboards.leaderboard_current(scope="fixed")
    names, w = plots._pair_matrices(board)
    assert names[0] == "Model A"
    a, b = 0, names.index("Model B")
    assert w[a, b] == 3 and w[b, a] == 0  # A beat B three times in fixed duels
    times, series = plots.elo_history(board)
    last = {r["model_id"]: r["elo"] for r in board.rows}
    for model, values in series.items():
        assert math.isclose(values[-1], last[model], abs_tol=1e-9)
    days = votelog.votes_per_day("overall")
    assert sum(sum(c.values()) for c in days.values()) == 15


def test_bad_plot_requests_are_400s(client, log):
    assert client.get("/leaderboard/plots/pie.png").status_code == 400
    assert client.get("/leaderboard/plots/ratings.gif").status_code == 400
    assert client.get("/leaderboard/plots/ratings.png?scope=nope").status_code == 400
    bad = client.get("/leaderboard/plots/ratings.png?size=tablet")
    assert bad.status_code == 400 and b"Unknown plot size 'tablet'; use desktop or phone." in bad.content


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_phone_plots_are_narrower_valid_pngs_cached_apart_from_desktop_ones(client, log, monkeypatch):
    from arena import plots

    url = reverse("arena:leaderboard_plot", args=["ratings", "png"]) + "?scope=overall"
    desktop = client.get(url).content
    for kind in plots.PLOTS:
        kind_url = reverse("arena:leaderboard_plot", args=[kind, "png"]) + "?scope=overall"
        phone = client.get(kind_url + "&size=phone")
        assert phone.status_code == 200 and phone["Content-Type"] == "image/png", kind
        width, height = _png_size(phone.content)
        assert width == 400 and height > 200, (kind, width, height)  # 4 in at 100 dpi
        assert _png_size(client.get(kind_url).content)[0] >= 500, kind
    assert _png_size(desktop)[0] == 800
    assert client.get(url + "&size=desktop").content == desktop  # desktop is the default
    board = leaderboards.leaderboard_current(scope="overall")
    assert plots.cache_key("ratings", "png", board, "phone") != plots.cache_key("ratings", "png", board, "desktop")

    def fail(*args, **kwargs):
        raise AssertionError("drawn again although the log did not change")

    monkeypatch.setattr(plots, "render", fail)
    assert _png_size(client.get(url + "&size=phone").content)[0] == 400
    assert client.get(url).content == desktop


def test_phone_plots_use_larger_fonts_and_fewer_models(log):
    from arena import plots

    desktop, phone = plots.STYLES["desktop"], plots.STYLES["phone"]
    assert phone.width <= 4.5 < desktop.width
    # shown about 350 px wide on a 390 px screen: the smallest text still reads as 9 pt or more
    scale = 350 / (phone.width * 96)
    assert min(phone.font - 1, phone.cell) * scale >= 9  # legends and colour bars are one point smaller
    board = leaderboards.leaderboard_current(scope="overall")
    names, w = plots._pair_matrices(board, phone)
    assert len(names) <= phone.models and all(len(n) <= phone.name for n in names)
    assert w.shape == (len(names), len(names))
    svg = plots.render("elo_over_time", "svg", board, "phone").decode()
    assert 'width="288pt"' in svg  # 4 in


# --- stats page -----------------------------------------------------------------------------------------------------


def test_wilson_interval_known_values():
    lo, hi = intervals.wilson_interval(8, 10)
    assert math.isclose(lo, 0.4902, abs_tol=1e-4) and math.isclose(hi, 0.9433, abs_tol=1e-4)
    assert intervals.wilson_interval(0, 0) is None
    lo, hi = intervals.wilson_interval(0, 5)
    assert lo == 0.0 and 0.4 < hi < 0.45


@pytest.fixture
def biased_log(db):
    """Honest voters who prefer model a over b over c over d (with some noise and ties), a robot that always
    picks the left image, and a voter whose votes are all too fast."""
    from tests.arena.factories import make_variant

    a, b, c, d = (make_variant(f"Bias {i}") for i in range(4))
    robot, fast = "e" * 32, "f" * 32
    honest = [f"{i:032x}" for i in range(1, 7)]
    rng = random.Random(4)
    models = [a, b, c, d]
    for i in range(120):
        x, y = rng.sample(models, 2)
        better = x if models.index(x) < models.index(y) else y
        voter = honest[i % len(honest)]
        roll = rng.random()
        choice = "tie" if roll < 0.08 else ("left" if (better is x) == (roll < 0.85) else "right")
        cast((x, y), choice, voter=voter)
    for i in range(24):  # always left, whatever the models
        cast((a, b) if i % 2 else (b, a), "left", voter=robot)
    cast((a, d), "bothbad", voter=honest[0], mode=Mode.FREE)
    for i in range(4):
        cast((a, c), "right", voter=fast, flagged=True, elapsed_ms=200)
    cast((a, b, c, d), "best", mode=Mode.FFA, best=2, voter=honest[1])
    return robot, fast


def test_stats_page_shows_position_bias_ties_flagged_and_anomalous_voters(client, biased_log):
    robot, fast = biased_log
    report = health.evaluation_health()
    fixed, free, both = report.duels
    counted = Vote.objects.filter(counted=True, mode=Mode.FIXED)
    left = counted.filter(choice="left").count()
    decisive = counted.filter(choice__in=["left", "right"]).count()
    assert (fixed.votes, fixed.left, fixed.decisive) == (counted.count(), left, decisive)
    assert fixed.left_rate.interval == intervals.wilson_interval(left, decisive)
    assert (free.votes, free.both_bad) == (1, 1)
    assert report.total == 150 and report.flagged == 4 and report.counted == 146
    assert report.ffa_positions == [0, 0, 1, 0]
    flagged = {v.judge: v for v in report.anomalous}
    assert set(flagged) == {voters.voter_hash(robot), voters.voter_hash(fast)}  # no honest voter flagged
    assert any("picked the left image in 100% of 24 decisive duels" in r for r in flagged[voters.voter_hash(robot)].reasons)
    assert "4 of 4 votes flagged" in flagged[voters.voter_hash(fast)].reasons[0]
    bias = {b.mode: b for b in report.position_bias}
    assert bias["fixed"].n == decisive - 24 and not bias["fixed"].biased  # the robot is left out of the crowd's

    page = client.get(reverse("arena:stats"))
    html = page.content.decode()
    assert page.status_code == 200 and "<html" in html
    assert f"{100 * left / decisive:.1f}%" in html
    lo, hi = intervals.wilson_interval(left, decisive)
    assert f"{100 * lo:.1f}–{100 * hi:.1f}%" in html
    assert "4 of 150 votes flagged" in html and 'id="mode-bias"' in html
    assert voters.voter_hash(robot)[:12] in html and voters.voter_hash(fast)[:12] in html
    assert "Leave out" not in html  # the exclusion buttons are for staff
    for raw in (robot, fast, "0" * 31 + "1", "ip-"):
        assert raw not in html
    assert 'id="judge-agreement"' in html
    partial = client.get(reverse("arena:stats"), **HX).content.decode()
    assert "<html" not in partial and 'id="position-bias"' in partial


def test_staff_leave_a_flagged_voter_out_from_the_stats_page(client, biased_log, admin_user):
    robot, _fast = biased_log
    judge = voters.voter_hash(robot)
    assert client.post(reverse("arena:voter_exclusion"), {"judge": judge, "reason": "x"}).status_code == 302
    assert not Vote.objects.filter(voter_key=robot, excluded=True).exists()  # a voter is sent to the login
    client.force_login(admin_user)
    assert "Leave out" in client.get(reverse("arena:stats")).content.decode()
    response = client.post(reverse("arena:voter_exclusion"), {"judge": judge, "reason": "always left"}, follow=True)
    assert "left out" in response.content.decode()
    assert Vote.objects.filter(voter_key=robot, excluded=True).count() == 24
    response = client.post(reverse("arena:voter_exclusion"), {"judge": judge, "reason": "again"}, follow=True)
    assert "already" in response.content.decode()
    response = client.post(reverse("arena:voter_exclusion"), {"judge": "0" * 32, "reason": "x"}, follow=True)
    assert "No voter" in response.content.decode()
    response = client.post(reverse("arena:voter_exclusion"), {"judge": judge, "action": "include"}, follow=True)
    assert not Vote.objects.filter(voter_key=robot, excluded=True).exists()


def test_stats_are_cached_until_the_log_changes(client, biased_log, django_assert_max_num_queries):
    health.evaluation_health()
    with django_assert_max_num_queries(1):
        health.evaluation_health()
    Vote.objects.filter(flagged=True).update(counted=True)
    assert health.evaluation_health().counted == 150


def test_judge_agreement_gets_the_counted_decided_duels_with_their_images(client, db, monkeypatch):
    from tests.arena.factories import make_variant

    a, b = make_variant("J1"), make_variant("J2")
    left = cast((a, b), "left", images=True)
    right = cast((b, a), "right", mode=Mode.FREE, images=True)
    cast((a, b), "tie", images=True)
    cast((a, b), "left", images=True, flagged=True)
    cast((a, b), "left")  # no images: left out
    duels = health.judge_duels()
    image = {v.id: [e.image_id for e in v.poll.entries.order_by("position")] for v in (left, right)}
    assert duels == [(*image[left.id], "left"), (*image[right.id], "right")]

    seen = []

    def fake(given):
        seen.append(list(given))
        return {"aesthetic": {"label": "aesthetic score", "agreed": 1, "total": 2, "share": 0.5,
                              "share_ci": intervals.wilson_interval(1, 2), "skipped": 0}}

    monkeypatch.setattr("arena.health.scorer_agreement", fake)
    html = client.get(reverse("arena:stats")).content.decode()
    assert seen == [duels]
    assert 'data-judge="aesthetic"' in html and "50.0%" in html


def test_export_votes_command_writes_the_same_files(client, log, tmp_path):
    from django.core.management import CommandError, call_command

    _staff(client)
    for fmt, url in (("battles", "/leaderboard/battles.json?scope=fixed"), ("jsonl", "/leaderboard/votes.jsonl?scope=fixed")):
        out = tmp_path / f"log.{fmt}"
        call_command("export_votes", "--format", fmt, "--scope", "fixed", "--out", str(out))
        assert out.read_text() == b"".join(client.get(url).streaming_content).decode()
    md = tmp_path / "board.md"
    call_command("export_votes", "--format", "md", "--scope", "fixed", "--out", str(md))
    assert LeaderboardSnapshot.objects.get(scope="fixed").vote_log_hash in md.read_text()
    with pytest.raises(CommandError, match="Unknown scope"):
        call_command("export_votes", "--scope", "nope")
