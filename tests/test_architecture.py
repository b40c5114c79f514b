"""The shape of the code (DESIGN.md §2), read from the sources with ``ast``: every import, at module level or inside
a function, is an arrow from one package to another, and the arrows run one way:

    training → arena → generation → ratings        (config, the site, sits above them all)

* ``ratings``, ``generation/pipelines``, ``generation/tiny`` and ``training/trainers`` import no Django (and no app;
  the pure libraries may use each other);
* ``generation`` imports neither ``arena`` nor ``training``; ``arena`` never imports ``training``; nothing but
  ``training`` itself imports ``training``;
* an app reaches another only through its ``models``, ``services``, ``selectors``, ``permissions`` and ``fields``
  (the site's one staff check and its strict form fields live in ``generation``; no views, tasks, forms, admin or
  private modules of another app);
* the web tier starts without the worker libraries: importing the URL configuration loads no torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "ratings", "generation", "arena", "training")
PURE = ("ratings", "generation.pipelines", "generation.tiny", "training.trainers")
#: Which top-level packages each package may import (besides itself).
ALLOWED = {
    "ratings": set(),
    "generation": {"ratings"},
    "arena": {"generation", "ratings"},
    "training": {"arena", "generation", "ratings"},
    "config": set(PACKAGES),
}
#: Modules of another app that may be imported (the app's public surface): its models, services and selectors,
#: and generation's pure libraries (the pipelines, the tiny-model builders, the SamplerSettings value).
PUBLIC = ("models", "services", "selectors", "permissions", "fields", "pipelines", "tiny", "sampling")
WORKER_LIBRARIES = ("torch", "diffusers", "transformers", "open_clip", "onnxruntime", "peft", "accelerate")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # "from generation import services" imports generation.services
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names if module in PACKAGES]
    return found


def _sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _violations() -> list[str]:
    problems = []
    for path in _sources():
        here = _module_name(path)
        top = here.split(".")[0]
        pure = next((p for p in PURE if here == p or here.startswith(p + ".")), None)
        for line, module in _imports(path):
            target = module.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            if pure and (target in ("django", "rest_framework", "celery") or
                         (target in PACKAGES and target != "ratings" and not module.startswith(("generation.pipelines", "generation.tiny", pure)))):
                problems.append(f"{where}: {pure} must import no Django and no app")
            if target in PACKAGES and target != top and target not in ALLOWED[top]:
                problems.append(f"{where}: {top} may not import {target}")
            if target in PACKAGES and target != top and top != "config" and target != "ratings" and not pure:
                second = module.split(".")[1] if module.count(".") else ""
                if second and second not in PUBLIC and not (target == "generation" and second == "scoring"
                                                            and module.split(".")[2:3] in ([], ["selectors"], ["services"], ["models"])):
                    problems.append(f"{where}: use {target}'s models, services or selectors")
    return problems


def test_every_import_follows_the_one_way_dependencies():
    assert _violations() == []


def test_the_checker_sees_a_wrong_arrow(tmp_path, monkeypatch):
    """The rule above can fail: a generation module importing arena, or a pure module importing Django."""
    bad = ROOT / "generation" / "_architecture_probe.py"
    pure_bad = ROOT / "ratings" / "_architecture_probe.py"
    bad.write_text("def f():\n    from arena import services\n")
    pure_bad.write_text("from django.conf import settings\n")
    try:
        found = _violations()
    finally:
        bad.unlink()
        pure_bad.unlink()
    assert any("generation/_architecture_probe.py:2 imports arena" in p for p in found)
    assert any("ratings/_architecture_probe.py:1 imports django.conf" in p for p in found)


@pytest.mark.parametrize("modules", [["config.urls"], ["ratings.online", "ratings.bradley_terry", "ratings.matchmaking"]])
def test_the_web_tier_and_the_engine_load_no_worker_libraries(modules):
    code = (
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')\n"
        + ("import django\ndjango.setup()\n" if modules[0].startswith("config") else "")
        + f"for m in {modules!r}: __import__(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {WORKER_LIBRARIES!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'celery')) if "
        f"{modules[0].startswith('ratings')!r} else [])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    heavy, django_modules = result.stdout.strip().splitlines()
    assert heavy == "[]"
    assert django_modules == "[]"
