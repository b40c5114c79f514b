"""The WSGI module warms a worker before its first voter: the views imported, the voters' templates compiled."""

import re
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
TEMPLATE_REF = re.compile(r'{%\s*(?:include|extends)\s+"([^"]+)"')


def _voter_templates() -> set[str]:
    """Every template the poll views render, with what they include or extend (read from the sources)."""
    names = set()
    for view in ("arena/views/polls.py", "arena/views/common.py"):
        names |= set(re.findall(r'"(arena/[A-Za-z_]+\.html)"', (ROOT / view).read_text()))
    todo = list(names)
    while todo:
        for ref in TEMPLATE_REF.findall((ROOT / "templates" / todo.pop()).read_text()):
            if ref not in names:
                names.add(ref)
                todo.append(ref)
    return names


def test_the_warm_up_compiles_every_template_of_the_voters_cycle_and_imports_the_views():
    import sys

    from config import wsgi

    found = _voter_templates()
    assert {"arena/_poll.html", "arena/_reveal.html", "arena/_ratings.html", "base.html"} <= found
    assert found <= set(wsgi.VOTER_TEMPLATES), f"add to config.wsgi.VOTER_TEMPLATES: {sorted(found - set(wsgi.VOTER_TEMPLATES))}"
    wsgi.warm()  # a name that is no template raises here, at boot, not at a voter's request
    assert "arena.views.polls" in sys.modules and "training.views" in sys.modules
