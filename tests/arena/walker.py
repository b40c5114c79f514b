"""Walk every URL of the site, as the URL configuration declares them, with real ids put in, and look for a poll's
secrets tied to a model (DESIGN.md §1: anonymity is a property of the whole site).

* :func:`site_urls` renders each pattern of ``config.urls`` (route and regex patterns, every namespace, Django admin
  and the DRF router included) with every value :class:`Values` offers for its parameters, and checks that each URL
  it makes resolves back to the same view. A pattern it cannot fill is an error, so a new URL cannot slip past
  the walk: give its parameters values in :class:`Values`.
* :class:`Secrets` are what an open poll must not give away: its images' bytes, file names, ids and seeds, and its
  prompt text; :func:`find_leaks` says which responses tie any of them to a model (its name, or a link to its page).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern

Segment = tuple[object, str | None]  # (pattern, the namespace it was included under)


def _patterns(patterns, prefix: tuple = (), namespace: str | None = None) -> Iterator[tuple[tuple, str, object]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace and (f"{namespace}:{entry.namespace}" if namespace else entry.namespace) or namespace
            yield from _patterns(entry.url_patterns, prefix + (entry.pattern,), ns)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else (entry.name or f"{namespace}:<unnamed>")
            yield prefix + (entry.pattern,), name, entry.callback


_ROUTE_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?:[^()]|\([^()]*\))*\)")


def _render_segment(pattern, values: dict[str, str]) -> str:
    if isinstance(pattern, RoutePattern):
        return _ROUTE_PARAM.sub(lambda m: values[m.group("name")], str(pattern))
    if isinstance(pattern, RegexPattern):
        text = _REGEX_GROUP.sub(lambda m: values[m.group("name")], pattern._regex)
        text = text.removeprefix("^").removesuffix("$").replace("/?", "/").replace("\\.", ".")
        if re.search(r"[\\()\[\]*+?|^$]", text):
            raise ValueError(f"cannot render the regex {pattern._regex!r}")
        return text
    raise ValueError(f"unknown pattern type {type(pattern).__name__}")


def _parameters(segments: tuple) -> list[str]:
    names = []
    for pattern in segments:
        if isinstance(pattern, RoutePattern):
            names += [m.group("name") for m in _ROUTE_PARAM.finditer(str(pattern))]
        elif isinstance(pattern, RegexPattern):
            names += [m.group("name") for m in _REGEX_GROUP.finditer(pattern._regex)]
    return names


@dataclass
class Values:
    """Real values for URL parameters: by parameter name, and by (URL name, parameter) where it depends on the view.
    ``queries`` adds query strings to URL names (each one visited besides the bare URL)."""

    by_name: dict[str, list[str]] = field(default_factory=dict)
    by_view: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    queries: dict[str, list[str]] = field(default_factory=dict)
    admin_objects: dict[str, list[str]] = field(default_factory=dict)  # "app_label.model_name" -> pks

    def choices(self, url_name: str, parameter: str, rendered_prefix: str) -> list[str]:
        if (url_name, parameter) in self.by_view:
            return self.by_view[(url_name, parameter)]
        if parameter == "object_id" and rendered_prefix.startswith("admin/"):
            parts = rendered_prefix.split("/")
            key = f"{parts[1]}.{parts[2]}"
            return self.admin_objects.get(key) or ["999999"]
        if parameter == "app_label" and url_name == "admin:app_list":
            return sorted({m._meta.app_label for m in apps.get_models() if m._meta.app_label in _admin_apps()})
        if parameter in self.by_name:
            return self.by_name[parameter]
        raise KeyError(f"{url_name}: no values for the parameter {parameter!r} (add them to the walk's Values)")


def _admin_apps() -> set[str]:
    from django.contrib import admin

    return {model._meta.app_label for model in admin.site._registry}


def site_urls(values: Values) -> list[tuple[str, str]]:
    """Every (url_name, path) of the site, parameters filled with each of their values (in combination)."""
    out: list[tuple[str, str]] = []
    for segments, url_name, callback in _patterns(get_resolver().url_patterns):
        params = _parameters(segments)
        combos: list[dict[str, str]] = [{}]
        for param in params:
            prefix = "".join(_render_segment(s, {p: "0" for p in _parameters((s,))}) for s in segments)
            combos = [{**c, param: v} for c in combos for v in values.choices(url_name, param, prefix)]
        for combo in combos:
            path = "/" + "".join(_render_segment(s, combo) for s in segments)
            match = resolve(path)
            if match.func is not callback:
                raise AssertionError(f"{url_name}: {path} resolves to {match.view_name}, not to its own view")
            out.append((url_name, path))
            for query in values.queries.get(url_name, []):
                out.append((url_name, f"{path}?{query}"))
    return list(dict.fromkeys(out))


# --- secrets and leaks -------------------------------------------------------------------------------------------


@dataclass
class Secrets:
    """What open polls must not give away. ``texts``: strings that must never appear beside a model marker (prompt
    texts, seeds, file names, image ids in URLs); ``hidden_texts``: strings no outsider may see at all (a free duel's
    prompt before its vote); ``blobs``: bytes (the images and thumbnails) no outsider may be served."""

    texts: dict[str, str] = field(default_factory=dict)  # text -> what it is
    hidden_texts: dict[str, str] = field(default_factory=dict)
    blobs: dict[bytes, str] = field(default_factory=dict)
    model_markers: dict[str, str] = field(default_factory=dict)  # text -> model


def image_secrets(secrets: Secrets, image, label: str) -> None:
    secrets.texts[str(image.seed)] = f"{label}: seed"
    secrets.texts[f"/images/{image.pk}/"] = f"{label}: image id in a URL"
    for field_file in (image.file, image.voter_file, image.thumb):
        if field_file:
            token = field_file.name.rsplit("/", 1)[-1].split(".")[0]
            secrets.texts[token] = f"{label}: file name {field_file.name}"
            with field_file.open("rb") as fh:
                secrets.blobs[fh.read()] = f"{label}: bytes of {field_file.name}"


def find_leaks(responses: Iterable[tuple[str, object]], secrets: Secrets, *, outsider: bool,
               allowed_blobs: Iterable[str] = ()) -> list[str]:
    """Responses that tie a secret to a model, serve a secret's bytes, or (to an outsider) show a hidden text.
    ``allowed_blobs``: paths that may serve an image's bytes (the poll's own image URLs, to its voter)."""
    leaks = []
    allowed = set(allowed_blobs)
    for path, response in responses:
        body = _body(response)
        text = body.decode("latin-1") + "\n" + "\n".join(f"{k}: {v}" for k, v in response.items())
        # Text in a page may be HTML-escaped; undo the escapes a template applies.
        text = text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&#x27;", "'")
        try:  # JSON escapes non-ASCII as \\uXXXX
            text += "\n" + body.decode("utf-8")
        except UnicodeDecodeError:
            pass
        models = sorted({model for marker, model in secrets.model_markers.items() if marker in text})
        if models:
            for secret, what in secrets.texts.items():
                if secret in text:
                    leaks.append(f"{path}: {what} beside {', '.join(models)}")
        if outsider:
            for secret, what in secrets.hidden_texts.items():
                if secret in text:
                    leaks.append(f"{path}: {what} shown to an outsider")
        if path not in allowed:
            for blob, what in secrets.blobs.items():
                if blob in body:
                    leaks.append(f"{path}: serves {what}")
    return leaks


def _body(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content
