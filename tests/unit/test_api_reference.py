"""The API reference (docs/reference/) documents every public module and every name it exports.

mkdocstrings renders a module's ``__all__`` names that have a docstring; the app page lists
its objects one by one, grouped by topic. Neither fails the docs build when a new export is
left out, so this checks it, reading the sources statically with griffe as the build does.
"""

from __future__ import annotations

import re
from pathlib import Path

import griffe

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"
# Public modules documented elsewhere: the command line in docs/cli.md; the demo app and the
# store package (whose stores `redis_sessions` exports) have no API of their own.
NOT_ON_A_PAGE = {"redis_sessions.cli", "redis_sessions.demo", "redis_sessions.store"}
# Exported names the app page names in its text instead of a directive.
IN_THE_TEXT = {"redis_sessions.__version__"}

DIRECTIVE = re.compile(r"^::: (\S+)\n((?:    .*\n)*)", re.MULTILINE)


def _directives() -> dict[str, str]:
    """Every ``::: path`` of the reference pages, with its indented options block."""
    found: dict[str, str] = {}
    for page in sorted(REFERENCE.glob("*.md")):
        for path, options in DIRECTIVE.findall(page.read_text()):
            found[path] = options
    return found


def _package() -> griffe.Module:
    package = griffe.load("redis_sessions", search_paths=[str(ROOT / "src")])
    assert isinstance(package, griffe.Module)
    return package


def _public_modules(package: griffe.Module) -> list[griffe.Module]:
    modules = [package]
    for name, member in package.modules.items():
        if not name.startswith("_") and not member.is_alias:
            modules.append(member)
    return modules


def _rendered(module: griffe.Module, directives: dict[str, str]) -> set[str]:
    """The exported names of `module` that some directive renders."""
    whole = directives.get(module.path)
    names = set()
    for name in module.exports or []:
        path = f"{module.path}.{name}"
        member = module[str(name)]  # a str, or an ExprName for a name from elsewhere
        target = member.final_target if member.is_alias else member
        if path in directives or (whole is not None and target.docstring is not None):
            names.add(path)
    return names


def test_every_public_module_has_a_reference_page() -> None:
    directives = _directives()
    modules = {m.path for m in _public_modules(_package())} - NOT_ON_A_PAGE - {"redis_sessions"}
    missing = sorted(path for path in modules if path not in directives)
    assert missing == []


def test_every_exported_name_is_rendered() -> None:
    package = _package()
    directives = _directives()
    rendered: set[str] = set()
    missing: list[str] = []
    modules = [m for m in _public_modules(package) if m.path not in NOT_ON_A_PAGE]
    for module in modules:
        rendered |= _rendered(module, directives)
    engine = package["engine"]
    for module in modules:
        for name in module.exports or []:
            path = f"{module.path}.{name}"
            # The app module re-exports the engine API, which the engine page documents.
            on_engine_page = module is package and f"{engine.path}.{name}" in rendered
            if path not in rendered and path not in IN_THE_TEXT and not on_engine_page:
                missing.append(path)
    assert missing == []
