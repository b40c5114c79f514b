"""The read-only REST API (DRF) with its OpenAPI schema (drf-spectacular).

* ``/api/leaderboard/<scope>/`` (and ``/api/leaderboard/?scope=``): the stored leaderboard of a scope;
* ``/api/models/``: the models with their live ratings per scope;
* ``/api/polls/``: voted polls only, with the models in screen order and the outcome; no voter ids. The prompt is
  given only where ``arena.permissions.prompts_revealed`` allows it with the poll's models: a fixed prompt still in
  the poll pool (or a free prompt in an open duel) would tie the pool's images to their models, so it is ``null``;
* ``/api/votes/``: the vote log, for staff or an API token only; voters appear as ``judge``, a salted hash.

Nothing here writes. Session keys (``voter_key``) and address hashes (``ip_hash``) are never serialized. Query
parameters are parsed strictly (``arena.inputs``): an unknown value, an empty one or one given twice is a 400 with
the parameter named; every status an operation returns is in the OpenAPI schema.
"""

from __future__ import annotations

from django.db.models import F, Prefetch
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import pagination, serializers, viewsets
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from arena import exports, selectors
from arena.errors import ArenaError
from arena.inputs import MODES, SCOPES, bool_clean, int_clean, mode_clean, scope_clean, single
from arena.permissions import IsStaffOrToken, revealed_prompt_ids
from arena.services.leaderboards import leaderboard_current
from arena.voters import voter_hash
from arena.models import Poll, PollEntry, Rating, Scope, Vote
from generation.models import ModelVariant

SCOPE_PARAM = OpenApiParameter(
    "scope", str, OpenApiParameter.QUERY, enum=list(SCOPES), default=Scope.OVERALL,
    description="a poll mode, or overall",
)


def _query(request, param: str, clean, **kwargs):
    """One query parameter, parsed by ``clean`` (an ``arena.inputs`` function); bad input is a 400 naming it."""
    try:
        return clean(single(request.query_params, param), **kwargs)
    except ArenaError as exc:
        raise ValidationError({param: [exc.message]}) from None


def _scope(value: str) -> str:
    """A scope in the path."""
    try:
        return scope_clean(value, allow_empty=False)
    except ArenaError as exc:
        raise ValidationError({"scope": [exc.message]}) from None


# --- what every operation may answer besides its 200 ------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="what went wrong, for a person to read")


#: A 400: each bad parameter with its messages, e.g. ``{"scope": ["Unknown scope 'x'; use one of ..."]}``.
BAD_REQUEST = OpenApiResponse(
    {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    description="a query parameter is malformed, unknown, empty or given twice; each one is named with the reason",
)
UNAUTHORIZED = OpenApiResponse(ErrorSerializer, description="the Authorization token is not valid (or none was given where one is needed)")
FORBIDDEN = OpenApiResponse(ErrorSerializer, description="signed in, but neither staff nor an API token holder")
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="no such object")


def responses(ok, *, parameters: bool = True, found: bool = False, restricted: bool = False) -> dict:
    """The responses of a read operation: its 200, a 400 where it takes parameters, a 401 for a bad token (any
    operation: token authentication runs first), and 403/404 where they apply."""
    out = {200: ok, 401: UNAUTHORIZED}
    if parameters:
        out[400] = BAD_REQUEST
    if restricted:
        out[403] = FORBIDDEN
    if found:
        out[404] = NOT_FOUND
    return dict(sorted(out.items()))


class StrictLimitOffsetPagination(pagination.LimitOffsetPagination):
    """DRF's limit/offset, except that a malformed, empty, out-of-range or repeated ``limit``/``offset`` is a 400
    (DRF quietly falls back to the defaults)."""

    max_limit = 1000
    max_offset = 10**12

    def get_limit(self, request):
        limit = _query(request, self.limit_query_param, _optional_int, minimum=1, maximum=self.max_limit)
        return self.default_limit if limit is None else limit

    def get_offset(self, request):
        offset = _query(request, self.offset_query_param, _optional_int, minimum=0, maximum=self.max_offset)
        return offset or 0

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {self.limit_query_param: (1, self.max_limit), self.offset_query_param: (0, self.max_offset)}
        for parameter in parameters:
            low, high = bounds[parameter["name"]]
            parameter["schema"].update({"minimum": low, "maximum": high})
        return parameters


def _optional_int(value: str | None, *, minimum: int, maximum: int) -> int | None:
    if value is None:
        return None
    return int_clean(value, name="this parameter", minimum=minimum, maximum=maximum, max_digits=len(str(maximum)))


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

    @extend_schema(parameters=[SCOPE_PARAM], responses=responses(LeaderboardSerializer), operation_id="leaderboard_query")
    def get(self, request, scope: str | None = None):
        scope = _scope(scope) if scope is not None else _query(request, "scope", scope_clean, allow_empty=False)
        return Response(exports.leaderboard_document(leaderboard_current(scope=scope)))


class LeaderboardScopeView(LeaderboardView):
    @extend_schema(
        parameters=[OpenApiParameter("scope", str, OpenApiParameter.PATH, enum=list(SCOPES))],
        responses=responses(LeaderboardSerializer), operation_id="leaderboard_scope",
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


@extend_schema_view(
    list=extend_schema(responses=responses(ModelVariantSerializer(many=True))),
    retrieve=extend_schema(responses=responses(ModelVariantSerializer, parameters=False, found=True)),
)
class ModelViewSet(viewsets.ReadOnlyModelViewSet):
    """Registered models (no file paths) with their live ratings per scope."""

    serializer_class = ModelVariantSerializer
    pagination_class = StrictLimitOffsetPagination
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
    prompt = serializers.SerializerMethodField(
        help_text="the prompt, or null while it could still appear in a poll (a fixed prompt in the poll pool, a free "
                  "prompt in an open duel): shown with these models it would give those polls away"
    )
    entries = PollEntrySerializer(many=True)
    vote = PollVoteSerializer()

    class Meta:
        model = Poll
        fields = ["token", "mode", "prompt", "created_at", "entries", "vote"]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_prompt(self, poll: Poll) -> str | None:
        revealed = self.context.get("revealed_prompts")
        if revealed is None:
            revealed = revealed_prompt_ids([poll.prompt_id], viewer=self.context["request"].user)
        return poll.prompt.text if poll.prompt_id in revealed else None


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("mode", str, OpenApiParameter.QUERY, enum=list(MODES))],
        responses=responses(PollSerializer(many=True)),
    ),
    retrieve=extend_schema(responses=responses(PollSerializer, parameters=False, found=True)),
)
class PollViewSet(viewsets.ReadOnlyModelViewSet):
    """Voted polls, newest first: the prompt (where it may be shown, see ``prompt``), the models in screen order and
    the outcome; no voter ids."""

    serializer_class = PollSerializer
    pagination_class = StrictLimitOffsetPagination
    lookup_field = "token"

    def get_queryset(self):
        polls = (
            Poll.objects.filter(status=Poll.Status.VOTED, vote__isnull=False)
            .select_related("prompt", "vote")
            .prefetch_related(Prefetch("entries", queryset=PollEntry.objects.select_related("variant").order_by("position")))
            .order_by("-id")
        )
        if self.action == "list":
            mode = _query(self.request, "mode", mode_clean)
            if mode is not None:
                polls = polls.filter(mode=mode)
        return polls

    def get_serializer(self, *args, **kwargs):
        """Decide once per page which prompts may be shown with their models (``arena.permissions``)."""
        if args:
            polls = args[0] if kwargs.get("many") else [args[0]]
            kwargs["context"] = {
                **self.get_serializer_context(),
                "revealed_prompts": revealed_prompt_ids([p.prompt_id for p in polls], viewer=self.request.user),
            }
        return super().get_serializer(*args, **kwargs)


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


@extend_schema_view(
    list=extend_schema(
        parameters=[SCOPE_PARAM, OpenApiParameter("counted", bool, OpenApiParameter.QUERY)],
        responses=responses(VoteSerializer(many=True), restricted=True),
    ),
    retrieve=extend_schema(responses=responses(VoteSerializer, parameters=False, found=True, restricted=True)),
)
class VoteViewSet(viewsets.ReadOnlyModelViewSet):
    """The vote log in its order (``seq``, the place the ratings consumer gave each vote; votes not placed yet
    come last), flagged, excluded and uncounted votes included, with each vote's ``chain_hash``: the SHA-256 of
    the previous vote's hash and this vote, so a reader can check the log is the one the site rated."""

    serializer_class = VoteSerializer
    pagination_class = StrictLimitOffsetPagination
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsStaffOrToken]

    def get_queryset(self):
        votes = Vote.objects.select_related("poll").only(
            "id", "seq", "chain_hash", "poll__token", "mode", "choice", "variants", "ranks", "full_ranking",
            "created_at", "elapsed_ms", "flagged", "counted", "excluded", "voter_key",
        ).order_by(F("seq").asc(nulls_last=True), "id")
        if self.action == "list":
            scope = _query(self.request, "scope", scope_clean, allow_empty=False)
            if scope != Scope.OVERALL:
                votes = votes.filter(mode=scope)
            counted = _query(self.request, "counted", bool_clean, name="counted")
            if counted is not None:
                votes = votes.filter(counted=counted)
        return votes

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["names"] = dict(ModelVariant.objects.values_list("id", "name"))
        return context



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
