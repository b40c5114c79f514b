import json

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from arena import voters
from arena.models import LeaderboardSnapshot, Mode, Poll, Rating
from tests.arena.votelog import cast, small_log

pytestmark = pytest.mark.django_db
VOTER = "a" * 32


@pytest.fixture(autouse=True)
def _quick_bootstrap(settings):
    settings.BT_BOOTSTRAP_ROUNDS = 10


@pytest.fixture
def log(db):
    return small_log()


@pytest.fixture
def token(db):
    user = get_user_model().objects.create_user("reader", password="pw-123456789")
    return Token.objects.create(user=user)


def _no_secrets(text: str) -> None:
    assert VOTER not in text and "voter_key" not in text
    assert "ip-" not in text and "ip_hash" not in text


def test_leaderboard_per_scope(client, log):
    response = client.get("/api/leaderboard/fixed/")
    assert response.status_code == 200
    doc = response.json()
    snapshot = LeaderboardSnapshot.objects.get(scope="fixed")
    assert doc["scope"] == "fixed" and doc["vote_log_hash"] == snapshot.vote_log_hash and doc["vote_count"] == 12
    assert doc["params"]["bt"]["rounds"] == 10
    assert [r["model_id"] for r in doc["rows"]] == [r["model"] for r in snapshot.rows]
    top = doc["rows"][0]
    assert top["model"] == "Model A" and top["bt_lo"] <= top["bt"] <= top["bt_hi"] and top["rank"] == 1
    by_query = client.get("/api/leaderboard/?scope=fixed").json()
    assert by_query["vote_log_hash"] == doc["vote_log_hash"]
    assert client.get("/api/leaderboard/").json()["scope"] == "overall"
    assert LeaderboardSnapshot.objects.count() == 2


def test_unknown_scope_is_a_400(client, log):
    for url in ("/api/leaderboard/everything/", "/api/leaderboard/?scope=x", "/api/polls/?mode=x"):
        response = client.get(url)
        assert response.status_code == 400, url
    assert "Unknown scope" in json.dumps(client.get("/api/leaderboard/x/").json())
    assert LeaderboardSnapshot.objects.count() == 0


def test_models_with_their_ratings_and_no_file_paths(client, log):
    models, _ = log
    models[0].source_path = "/secret/checkpoints/a.safetensors"
    models[0].save()
    Rating.objects.update_or_create(
        variant=models[0], scope="overall", defaults=dict(elo=1010.0, mu=26.0, sigma=7.0, votes=3, games=3, wins=2.0)
    )
    response = client.get("/api/models/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4 and [m["name"] for m in body["results"]] == ["Model A", "Model B", "Model C", "Model D"]
    rating = next(r for r in body["results"][0]["ratings"] if r["scope"] == "overall")
    assert rating["scope"] == "overall" and rating["elo"] == 1010.0 and rating["conservative"] == 26.0 - 21.0
    assert "/secret/" not in response.content.decode()
    assert client.get(f"/api/models/{models[1].id}/").json()["name"] == "Model B"


def test_polls_lists_only_voted_polls_without_voter_ids(client, log):
    models, votes = log
    unvoted = Poll.objects.create(
        mode=Mode.FIXED, voter_key=VOTER, ip_hash="ip-x", prompt=votes[0].poll.prompt, status=Poll.Status.READY,
        expires_at=votes[0].created_at,
    )
    response = client.get("/api/polls/?limit=100")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 15
    tokens = {p["token"] for p in body["results"]}
    assert str(unvoted.token) not in tokens
    _no_secrets(response.content.decode())
    ffa = client.get("/api/polls/?mode=ffa").json()["results"]
    assert len(ffa) == 2 and [e["position"] for e in ffa[0]["entries"]] == [0, 1, 2, 3]
    ranking = ffa[0]
    assert ranking["vote"]["choice"] == "ranking" and ranking["vote"]["ranks"] == [0, 1, 3, 2]
    assert [e["model"] for e in ranking["entries"]] == ["Model A", "Model B", "Model C", "Model D"]
    one = client.get(f"/api/polls/{votes[0].poll.token}/").json()
    assert one["vote"]["choice"] == "left" and one["prompt"] == votes[0].poll.prompt.text


def test_votes_are_refused_to_anonymous_and_ordinary_users(client, log):
    response = client.get("/api/votes/")
    assert response.status_code in (401, 403)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Token")
    assert client.get("/api/votes/", HTTP_AUTHORIZATION="Token wrong").status_code == 401
    user = get_user_model().objects.create_user("someone", password="pw-123456789")
    client.force_login(user)
    assert client.get("/api/votes/").status_code == 403
    _no_secrets(client.get("/api/votes/").content.decode())


def test_votes_for_a_token_have_hashed_voter_ids_only(client, log, token):
    models, votes = log
    flagged = cast((models[0], models[1]), "right", voter="z" * 32, flagged=True, elapsed_ms=100)
    response = client.get("/api/votes/?limit=100", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 16
    results = body["results"]
    assert [v["id"] for v in results] == [v.id for v in sorted([*votes, flagged], key=lambda v: (v.created_at, v.id))]
    first = results[0]
    assert first["judge"] == voters.voter_hash(VOTER) and first["models"] == ["Model A", "Model B"]
    assert first["variants"] == [models[0].id, models[1].id] and first["poll"] == str(votes[0].poll.token)
    last = results[-1]
    assert last["flagged"] is True and last["counted"] is False and last["judge"] == voters.voter_hash("z" * 32)
    text = response.content.decode()
    _no_secrets(text)
    assert "z" * 32 not in text
    counted = client.get("/api/votes/?counted=true&scope=fixed&limit=100", HTTP_AUTHORIZATION=f"Token {token.key}").json()
    assert counted["count"] == 12
    bad = client.get("/api/votes/?counted=maybe", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert bad.status_code == 400


def test_votes_for_staff_by_session(client, log):
    staff = get_user_model().objects.create_user("boss", password="pw-123456789", is_staff=True)
    client.force_login(staff)
    response = client.get(f"/api/votes/{log[1][2].id}/")
    assert response.status_code == 200 and response.json()["choice"] == "left"
    _no_secrets(response.content.decode())


def test_api_is_read_only(client, log, token):
    auth = {"HTTP_AUTHORIZATION": f"Token {token.key}"}
    assert client.post("/api/votes/", {"choice": "left"}, **auth).status_code == 405
    assert client.delete(f"/api/polls/{log[1][0].poll.token}/").status_code == 405
    assert client.post("/api/leaderboard/fixed/").status_code == 405


def test_openapi_schema_and_docs(client, db):
    from drf_spectacular.validation import validate_schema

    from arena.api import schema_document

    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    for path in ("/api/leaderboard/", "/api/leaderboard/{scope}/", "/api/models/", "/api/polls/", "/api/polls/{token}/",
                 "/api/votes/", "/api/votes/{id}/"):
        assert path in schema["paths"], path
    assert all(set(ops) <= {"get", "parameters"} for ops in schema["paths"].values())
    row = schema["components"]["schemas"]["LeaderboardRow"]["properties"]
    assert {"bt", "bt_lo", "bt_hi", "rank", "twa_elo", "conservative"} <= set(row)
    vote = schema["components"]["schemas"]["Vote"]["properties"]
    assert "judge" in vote and "voter_key" not in vote and "ip_hash" not in vote
    validate_schema(schema_document())
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"/api/votes/" in docs.content and b"Authorization: Token" in docs.content


@pytest.mark.parametrize("query", [
    "offset=null&offset=null", "offset=null", "offset=-1", "offset=²", "offset=" + "9" * 5000, "limit=0", "limit=1001",
    "limit=", "limit=1&limit=2", "mode=", "mode=fixed&mode=free", "mode=x",
])
def test_bad_list_parameters_are_a_400_that_names_them(client, log, query):
    response = client.get(f"/api/polls/?{query}")
    assert response.status_code == 400, query
    name = query.split("=")[0]
    assert list(response.json()) == [name] and response.json()[name][0]


@pytest.mark.parametrize("url", ["/api/leaderboard/?scope=", "/api/leaderboard/?scope=fixed&scope=free",
                                 "/api/votes/?scope=", "/api/votes/?counted=", "/api/votes/?counted=true&counted=false"])
def test_an_empty_or_repeated_scope_or_flag_is_a_400(client, log, token, url):
    response = client.get(url, HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 400, url
    assert LeaderboardSnapshot.objects.count() == 0


def test_good_paging_still_pages(client, log):
    first = client.get("/api/polls/?limit=2").json()
    second = client.get("/api/polls/?limit=2&offset=2").json()
    assert first["count"] == second["count"] == 15
    assert len(first["results"]) == len(second["results"]) == 2
    assert {p["token"] for p in first["results"]}.isdisjoint(p["token"] for p in second["results"])


def test_a_bad_token_is_a_401_everywhere(client, log):
    for url in ("/api/models/", "/api/polls/", "/api/leaderboard/", "/api/votes/"):
        response = client.get(url, HTTP_AUTHORIZATION="Token wrong")
        assert response.status_code == 401 and response["WWW-Authenticate"] == "Token", url


def test_the_schema_documents_every_status_an_operation_returns(client, db):
    schema = json.loads(client.get("/api/schema/?format=json").content)
    statuses = {path: set(ops["get"]["responses"]) for path, ops in schema["paths"].items() if path != "/api/schema/"}
    for path, codes in statuses.items():
        assert {"200", "401"} <= codes, path
    for path in ("/api/leaderboard/", "/api/leaderboard/{scope}/", "/api/models/", "/api/polls/", "/api/votes/"):
        assert "400" in statuses[path], path
    for path in ("/api/models/{id}/", "/api/polls/{token}/", "/api/votes/{id}/"):
        assert "404" in statuses[path] and "400" not in statuses[path], path
    assert "403" in statuses["/api/votes/"] and "403" in statuses["/api/votes/{id}/"]
    limit = next(p for p in schema["paths"]["/api/polls/"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["minimum"] == 1 and limit["schema"]["maximum"] == 1000
