import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_wsgi_application()

from arena.wsgi_images import PollImages  # noqa: E402 -- needs the apps loaded

#: Poll images take a short path in front of Django (arena/wsgi_images.py); everything else is Django's.
application = PollImages(django_application)

#: What a voter's cycle renders: compiled once here (the cached template loader keeps them), not by its first voters.
VOTER_TEMPLATES = ("base.html", "arena/poll_page.html", "arena/_poll.html", "arena/_guide.html", "arena/_keyhints.html",
                   "arena/_free_form.html", "arena/reveal_page.html", "arena/_reveal.html", "arena/_ratings.html",
                   "arena/_ratings_poller.html", "arena/_rating.html", "arena/_error.html", "arena/error_page.html")


def warm() -> None:
    """Import every view (the URLconf) and compile the voters' templates while the worker boots, before it takes a
    connection. Lazily, a fresh worker's first requests -- every thread of it at once -- waited for this: measured
    0.9-1.2 s for the URLconf's imports and 0.2 s more for the first poll page, which made the first few polls of
    each worker the benchmark's poll p99 (4.8 s with 64 voters). Touches no database."""
    from django.template.loader import get_template
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 -- importing the URLconf imports the views
    for name in VOTER_TEMPLATES:
        get_template(name)


warm()
