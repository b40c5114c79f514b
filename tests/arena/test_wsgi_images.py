"""The poll images' short path in front of Django (arena/wsgi_images.py): the poll's voter gets the same bytes
and headers as from the view, without Django's request cycle; everything else goes on to Django unchanged."""

from __future__ import annotations

import io
import sys

import pytest
from django.test import Client
from django.urls import reverse

from arena import polltickets
from arena.wsgi_images import PollImages
from tests.arena.issued import token_in

HX = {"HTTP_HX_REQUEST": "true"}


class Recorder:
    """Stands for Django: counts what reaches it."""

    def __init__(self):
        self.paths = []

    def __call__(self, environ, start_response):
        self.paths.append(environ["PATH_INFO"])
        start_response("599 Django", [("Content-Type", "text/plain")])
        return [b"django"]


def call(app, path: str, *, cookie: str = "", method: str = "GET", host: str = "testserver", https: bool = False):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "testserver",
               "SERVER_PORT": "443" if https else "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": host,
               "wsgi.url_scheme": "https" if https else "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
               "REMOTE_ADDR": "127.0.0.1"}
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    got = {}

    def start_response(status, headers, exc_info=None):
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return int(got["status"].split()[0]), got["headers"], body


def _session(client: Client) -> str:
    return f"sessionid={client.cookies['sessionid'].value}"


@pytest.fixture
def issued(client, arena):
    """A free-for-all poll issued to ``client``: its ticket and the voter's cookie."""
    token = token_in(client.get(reverse("arena:ffa"), **HX).content.decode())
    return token, _session(client)


def test_the_voter_gets_the_views_bytes_and_headers_without_django(client, issued):
    token, cookie = issued
    django = Recorder()
    app = PollImages(django)
    for position in range(4):
        path = reverse("arena:poll_image", args=[token, position])
        view = client.get(path)
        status, headers, body = call(app, path, cookie=cookie)
        assert status == 200 and body == view.content and len(body) > 100
        assert headers["Content-Length"] == str(len(body))
        for name in ("Content-Type", "Cache-Control", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy",
                     "Cross-Origin-Opener-Policy"):
            assert headers[name] == view[name], name
        assert "Cookie" in headers["Vary"] and "Set-Cookie" not in headers
        status, headers, body = call(app, path, cookie=cookie, method="HEAD")
        assert status == 200 and body == b"" and headers["Content-Length"] == str(len(view.content))
    assert django.paths == []


def test_everything_but_the_voters_own_image_goes_on_to_django(client, issued, settings):
    token, cookie = issued
    stranger = Client()
    stranger.get(reverse("arena:fixed"), **HX)  # a session of their own
    image = reverse("arena:poll_image", args=[token, 0])
    cases = [
        dict(path=image),  # no session
        dict(path=image, cookie=_session(stranger)),  # someone else's poll
        dict(path=image, cookie="sessionid=forged"),
        dict(path=reverse("arena:poll_image", args=[token, 4]), cookie=cookie),  # no such place
        dict(path=reverse("arena:poll_image", args=[token[:-4] + "AAAA", 0]), cookie=cookie),  # not a ticket
        dict(path=reverse("arena:poll_image", args=["1b4e28ba-2fa1-11d2-883f-0016d3cca427", 0]), cookie=cookie),
        dict(path=image, cookie=cookie, method="POST"),
        dict(path=image, cookie=cookie, host="evil.example"),  # a host Django refuses
        dict(path=image + "/", cookie=cookie),
        dict(path=reverse("arena:poll", args=[token]), cookie=cookie),
    ]
    for case in cases:
        django = Recorder()
        assert call(PollImages(django), **case)[0] == 599, case
        assert django.paths == [case["path"]]
    settings.SECURE_SSL_REDIRECT = True  # plain HTTP must be redirected, which is Django's to do
    django = Recorder()
    assert call(PollImages(django), image, cookie=cookie)[0] == 599
    status, headers, _ = call(PollImages(django), image, cookie=cookie, https=True)
    assert status == 200 and django.paths == [image]


@pytest.fixture
def site():
    """The site's WSGI application as gunicorn serves it, with the test's database connection kept open across
    its requests (as the test client keeps it)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from config.wsgi import application

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield application
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_an_image_gone_from_disk_is_left_to_the_view_which_answers_404(client, issued, site):
    application = site

    token, cookie = issued
    ticket = polltickets.decode(token)
    from generation.models import Image

    image = Image.objects.get(id=ticket.image_ids[1])
    image.voter_file.storage.delete(image.voter_file.name)
    path = reverse("arena:poll_image", args=[token, 1])
    assert call(application, path, cookie=cookie)[0] == 404
    assert call(application, reverse("arena:poll_image", args=[token, 0]), cookie=cookie)[0] == 200
    stranger = Client()
    stranger.get(reverse("arena:fixed"), **HX)
    assert call(application, path, cookie=_session(stranger))[0] == 403  # another voter: refused by the view
