"""Django admin for the voting domain. The vote log is append-only: admins can read and filter it, never
change or delete a vote."""

from django.contrib import admin

from arena.models import LeaderboardSnapshot, Poll, PollEntry, Rating, Vote


class PollEntryInline(admin.TabularInline):
    model = PollEntry
    extra = 0
    can_delete = False
    readonly_fields = ["position", "variant", "image", "task"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Poll)
class PollAdmin(admin.ModelAdmin):
    list_display = ["token", "mode", "status", "created_at", "shown_at", "expires_at"]
    list_filter = ["mode", "status"]
    search_fields = ["token", "prompt__text"]
    readonly_fields = [f.name for f in Poll._meta.fields]
    inlines = [PollEntryInline]

    def has_add_permission(self, request):
        return False


@admin.register(PollEntry)
class PollEntryAdmin(admin.ModelAdmin):
    list_display = ["poll", "position", "variant", "image"]
    list_select_related = ["poll", "variant"]
    readonly_fields = ["poll", "position", "variant", "image", "task"]

    def has_add_permission(self, request):
        return False


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ["id", "mode", "choice", "created_at", "elapsed_ms", "flagged", "counted"]
    list_filter = ["mode", "choice", "flagged", "counted"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Vote._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ["variant", "scope", "elo", "mu", "sigma", "votes", "games", "wins"]
    list_filter = ["scope"]
    list_select_related = ["variant"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Rating._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(LeaderboardSnapshot)
class LeaderboardSnapshotAdmin(admin.ModelAdmin):
    list_display = ["scope", "computed_at", "vote_count", "vote_log_hash"]
    list_filter = ["scope"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in LeaderboardSnapshot._meta.fields]

    def has_add_permission(self, request):
        return False
