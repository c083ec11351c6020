"""domain/ never imports a web, GraphQL or queue framework, nor the layers above it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_DOMAIN = {"strawberry", "starlette", "arq", "httpx", "uvicorn", "graph", "workers", "registry", "app", "cli", "fastapi", "redis"}
FORBIDDEN_IN_STORAGE = {"domain", "graph", "workers", "registry", "app", "cli", "strawberry", "starlette"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def violations(folder: str, forbidden: set[str]) -> dict[str, set[str]]:
    found = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        bad = imported_roots(path) & forbidden
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_domain_imports_no_framework() -> None:
    assert list((ROOT / "domain").rglob("*.py")), "domain/ has no modules?"
    assert violations("domain", FORBIDDEN_IN_DOMAIN) == {}


def test_storage_imports_nothing_of_ours() -> None:
    assert violations("storage", FORBIDDEN_IN_STORAGE) == {}


def test_the_check_catches_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("import os\nfrom strawberry import type as t\nimport httpx.client\n")
    assert imported_roots(sample) & FORBIDDEN_IN_DOMAIN == {"strawberry", "httpx"}
