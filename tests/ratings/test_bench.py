import io
import json
import subprocess
import sys
from pathlib import Path

from django.core.management import call_command

from ratings.battles import read_clean_battles
from ratings.bradley_terry import BTParams
from ratings.bench import model_name, run_bench, synthetic_duels
from ratings.leaderboard import compute_leaderboard

KEYS = {"votes", "elo_s", "bt_s", "bootstrap_s", "trueskill_s", "total_s", "peak_rss_mb"}


def test_synthetic_log_is_in_replay_order_with_ties_and_both_bad():
    table = synthetic_duels(votes=2000, models=6, seed=3)
    assert len(table) == 2000 and (table.a != table.b).all()
    assert set(table.result.tolist()) == {0, 1, 2, 3}
    assert (table.timestamps[1:] > table.timestamps[:-1]).all()


def test_bench_line_has_the_issues_keys_and_the_ratings_file_matches_a_full_recompute():
    out = io.StringIO()
    line = run_bench(votes=3000, models=6, seed=1, rounds=10, out=out)
    assert set(line) == KEYS and line["votes"] == 3000
    written = json.loads(out.getvalue())
    assert written["params"]["bt"]["rounds"] == 10
    expected = compute_leaderboard(synthetic_duels(votes=3000, models=6, seed=1).to_records(),
                                   bt=BTParams(rounds=10, seed=1))
    assert [r["model"] for r in written["ratings"]] == [r.model for r in expected]
    assert [r["elo"] for r in written["ratings"]] == [r.elo for r in expected]
    assert [r["bt_lo"] for r in written["ratings"]] == [r.bt_lo for r in expected]


def test_bench_command_prints_one_json_line_and_exports_battles(tmp_path):
    stdout = io.StringIO()
    battles = tmp_path / "battles.json"
    call_command("bench_ratings", "--votes", "500", "--models", "4", "--rounds", "5",
                 "--export-battles", str(battles), "--out", str(tmp_path / "ratings.json"), stdout=stdout)
    lines = stdout.getvalue().strip().splitlines()
    assert len(lines) == 1 and set(json.loads(lines[0])) == KEYS
    records = read_clean_battles(str(battles), {model_name(i): i for i in range(1, 5)})
    assert records == synthetic_duels(votes=500, models=4, seed=0).to_records()


def test_matchmaking_benchmark_prints_one_json_line():
    result = subprocess.run([sys.executable, "-m", "ratings.bench_matchmaking", "--models", "8", "--groups", "30",
                             "--draws", "20"], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2])
    lines = result.stdout.strip().splitlines()
    line = json.loads(lines[0])
    assert len(lines) == 1 and line["feasible_sets"] > 0
    assert set(line) >= {"models", "groups", "k", "feasible_ms", "prepare_ms", "draw_ms", "draw_pending_ms"}


def test_the_ratings_package_imports_no_django():
    package = Path(__file__).resolve().parents[2] / "ratings"
    sources = {p.name: p.read_text() for p in package.glob("*.py")}
    assert len(sources) >= 15  # the package really is here (it moved from arena/ratings once)
    assert not [name for name, text in sources.items() if "import django" in text or "from django" in text]
    # importing every module in a fresh interpreter loads no Django module at all
    modules = sorted(f"ratings.{name[:-3]}" for name in sources if name != "__init__.py")
    code = (
        "import sys\n"
        f"for m in {modules!r}: __import__(m)\n"
        "print(sorted(k for k in sys.modules if k == 'django' or k.startswith('django.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=package.parent, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(package.parent)})
    assert result.stdout.strip() == "[]"
