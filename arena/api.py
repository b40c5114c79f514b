"""The read-only REST API (DRF) with its OpenAPI schema (drf-spectacular).

* ``/api/leaderboard/<scope>/`` (and ``/api/leaderboard/?scope=``): the stored leaderboard of a scope;
* ``/api/models/``: the models with their live ratings per scope;
* ``/api/polls/``: voted polls only, with the models in screen order and the outcome; no voter ids;
* ``/api/votes/``: the vote log, for staff or an API token only; voters appear as ``judge``, a salted hash.

Nothing here writes. Session keys (``voter_key``) and address hashes (``ip_hash``) are never serialized.
"""

from __future__ import annotations

from django.db.models import F, Prefetch
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, viewsets
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from arena import exports, selectors
from arena.errors import ReportError
from arena.inputs import SCOPES, scope_clean
from arena.permissions import IsStaffOrToken
from arena.services.leaderboards import leaderboard_current
from arena.voters import voter_hash
from arena.models import Mode, Poll, PollEntry, Rating, Scope, Vote
from generation.models import ModelVariant

SCOPE_PARAM = OpenApiParameter(
    "scope", str, OpenApiParameter.QUERY, enum=list(SCOPES), default=Scope.OVERALL,
    description="a poll mode, or overall",
)


def _scope(value: str | None) -> str:
    try:
        return scope_clean(value)
    except ReportError as exc:
        raise ValidationError({"scope": exc.message}) from None


# --- leaderboards ---------------------------------------------------------------------------------------------------


class LeaderboardRowSerializer(serializers.Serializer):
    rank = serializers.IntegerField(help_text="1 + models whose interval lies wholly above this one's")
    model_id = serializers.IntegerField()
    model = serializers.CharField()
    kind = serializers.CharField()
    bt = serializers.FloatField(help_text="Bradley–Terry rating on the Elo scale")
    bt_lo = serializers.FloatField(allow_null=True, help_text="lower end of the 95% bootstrap interval")
    bt_hi = serializers.FloatField(allow_null=True, help_text="upper end of the 95% bootstrap interval")
    elo = serializers.FloatField(help_text="online Elo after the last vote")
    twa_elo = serializers.FloatField(help_text="time-weighted average Elo")
    ts_mu = serializers.FloatField()
    ts_sigma = serializers.FloatField()
    conservative = serializers.FloatField(help_text="TrueSkill mu - 3 sigma")
    votes = serializers.IntegerField()
    games = serializers.IntegerField()
    wins = serializers.FloatField(help_text="pairwise wins, ties counting half")
    win_rate = serializers.FloatField()


class LeaderboardSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(choices=Scope.choices)
    computed_at = serializers.DateTimeField()
    vote_log_hash = serializers.CharField(help_text="SHA-256 of the counted vote log it was computed from")
    vote_log_seq = serializers.IntegerField(help_text="the log was read up to this place (seq)")
    vote_log_head = serializers.CharField(help_text="the vote-log hash chain's head at that place")
    vote_count = serializers.IntegerField()
    params = serializers.JSONField(help_text="Elo, TrueSkill and Bradley–Terry parameters used")
    stale = serializers.BooleanField(help_text="the log has changed since; a recompute is due")
    votes_behind = serializers.IntegerField()
    rows = LeaderboardRowSerializer(many=True)


class LeaderboardView(APIView):
    """The stored leaderboard of a scope (recomputed when the vote log changed)."""

    @extend_schema(parameters=[SCOPE_PARAM], responses=LeaderboardSerializer, operation_id="leaderboard_query")
    def get(self, request, scope: str | None = None):
        scope = _scope(scope if scope is not None else request.query_params.get("scope"))
        return Response(exports.leaderboard_document(leaderboard_current(scope=scope)))


class LeaderboardScopeView(LeaderboardView):
    @extend_schema(
        parameters=[OpenApiParameter("scope", str, OpenApiParameter.PATH, enum=list(SCOPES))],
        responses=LeaderboardSerializer, operation_id="leaderboard_scope",
    )
    def get(self, request, scope: str | None = None):
        return super().get(request, scope)


# --- models ---------------------------------------------------------------------------------------------------------


class RatingSerializer(serializers.ModelSerializer):
    conservative = serializers.FloatField(read_only=True)
    win_rate = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Rating
        fields = ["scope", "elo", "mu", "sigma", "conservative", "votes", "games", "wins", "win_rate", "last_vote_at"]


class ModelVariantSerializer(serializers.ModelSerializer):
    ratings = serializers.SerializerMethodField(help_text="the live rating in every scope (initial until voted on)")

    class Meta:
        model = ModelVariant
        fields = [
            "id", "name", "family", "version", "kind", "prediction_type", "parent", "description", "enabled",
            "created_at", "ratings",
        ]


    @extend_schema_field(RatingSerializer(many=True))
    def get_ratings(self, variant: ModelVariant) -> list[dict]:
        rows = selectors.ratings_by_scope(variant.pk, variant.ratings.all())
        return RatingSerializer([rows[s] for s in sorted(rows)], many=True).data


class ModelViewSet(viewsets.ReadOnlyModelViewSet):
    """Registered models (no file paths) with their live ratings per scope."""

    serializer_class = ModelVariantSerializer
    queryset = ModelVariant.objects.prefetch_related(Prefetch("ratings", queryset=Rating.objects.order_by("scope"))).order_by("id")


# --- polls ----------------------------------------------------------------------------------------------------------


class PollEntrySerializer(serializers.ModelSerializer):
    model_id = serializers.IntegerField(source="variant_id")
    model = serializers.CharField(source="variant.name")

    class Meta:
        model = PollEntry
        fields = ["position", "model_id", "model"]


class PollVoteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Vote
        fields = ["choice", "ranks", "full_ranking", "created_at", "counted"]


class PollSerializer(serializers.ModelSerializer):
    prompt = serializers.CharField(source="prompt.text")
    entries = PollEntrySerializer(many=True)
    vote = PollVoteSerializer()

    class Meta:
        model = Poll
        fields = ["token", "mode", "prompt", "created_at", "entries", "vote"]


class PollViewSet(viewsets.ReadOnlyModelViewSet):
    """Voted polls, newest first: the prompt, the models in screen order and the outcome; no voter ids."""

    serializer_class = PollSerializer
    lookup_field = "token"

    def get_queryset(self):
        polls = (
            Poll.objects.filter(status=Poll.Status.VOTED, vote__isnull=False)
            .select_related("prompt", "vote")
            .prefetch_related(Prefetch("entries", queryset=PollEntry.objects.select_related("variant").order_by("position")))
            .order_by("-id")
        )
        mode = self.request.query_params.get("mode")
        if mode:
            if mode not in Mode.values:
                raise ValidationError({"mode": f"Unknown mode {mode!r}; use one of {', '.join(Mode.values)}."})
            polls = polls.filter(mode=mode)
        return polls

    @extend_schema(parameters=[OpenApiParameter("mode", str, OpenApiParameter.QUERY, enum=list(Mode.values))])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)


# --- votes ----------------------------------------------------------------------------------------------------------


class VoteSerializer(serializers.ModelSerializer):
    poll = serializers.UUIDField(source="poll.token")
    models = serializers.SerializerMethodField()
    judge = serializers.SerializerMethodField(help_text="salted hash of the voter's random id")

    class Meta:
        model = Vote
        fields = [
            "id", "seq", "chain_hash", "poll", "mode", "choice", "variants", "models", "ranks", "full_ranking",
            "created_at", "elapsed_ms", "flagged", "counted", "excluded", "judge",
        ]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_models(self, vote: Vote) -> list[str]:
        names = self.context.get("names", {})
        return [names.get(v, f"#{v}") for v in vote.variants]

    @extend_schema_field(OpenApiTypes.STR)
    def get_judge(self, vote: Vote) -> str:
        return voter_hash(vote.voter_key)


class VoteViewSet(viewsets.ReadOnlyModelViewSet):
    """The vote log in its order (``seq``, the place the ratings consumer gave each vote; votes not placed yet
    come last), flagged, excluded and uncounted votes included, with each vote's ``chain_hash``: the SHA-256 of
    the previous vote's hash and this vote, so a reader can check the log is the one the site rated."""

    serializer_class = VoteSerializer
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsStaffOrToken]

    def get_queryset(self):
        votes = Vote.objects.select_related("poll").only(
            "id", "seq", "chain_hash", "poll__token", "mode", "choice", "variants", "ranks", "full_ranking",
            "created_at", "elapsed_ms", "flagged", "counted", "excluded", "voter_key",
        ).order_by(F("seq").asc(nulls_last=True), "id")
        scope = _scope(self.request.query_params.get("scope"))
        if scope != Scope.OVERALL:
            votes = votes.filter(mode=scope)
        counted = self.request.query_params.get("counted")
        if counted is not None:
            if counted not in ("true", "false"):
                raise ValidationError({"counted": "Use true or false."})
            votes = votes.filter(counted=counted == "true")
        return votes

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["names"] = dict(ModelVariant.objects.values_list("id", "name"))
        return context

    @extend_schema(parameters=[SCOPE_PARAM, OpenApiParameter("counted", bool, OpenApiParameter.QUERY)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)


# --- docs -------------------------------------------------------------------------------------------------------------


def schema_document() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def api_docs(request):
    """A plain HTML page listing the operations of the OpenAPI schema (no CDN-served Swagger UI)."""
    from django.shortcuts import render

    schema = schema_document()
    operations = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            params = [
                {"name": p.get("name"), "where": p.get("in"), "required": p.get("required", False),
                 "description": p.get("description", ""), "enum": (p.get("schema") or {}).get("enum")}
                for p in op.get("parameters", [])
            ]
            operations.append({
                "method": method.upper(), "path": path, "summary": op.get("description", "").strip(),
                "parameters": params,
            })
    return render(request, "arena/api_docs.html", {"schema": schema, "operations": operations})
