"""The committed schema.graphql is the schema the code serves."""

from __future__ import annotations

import re
from pathlib import Path

from graph.schema import schema

ROOT = Path(__file__).resolve().parent.parent


def test_committed_sdl_matches_code() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed.strip() == schema.as_str().strip(), (
        "schema.graphql is out of date: run `python -m graph.schema > schema.graphql`"
    )


def test_schema_follows_conventions() -> None:
    sdl = schema.as_str()
    assert "interface Error {\n  message: String!\n}" in sdl
    for error in ["ValidationError", "NotFoundError", "PermissionDeniedError", "ConflictError"]:
        assert f"type {error} implements Error" in sdl
    assert "WAITING" not in sdl or "WAITING_APPROVAL" in sdl
    mutation = sdl[sdl.index("type Mutation {"):]
    mutation = mutation[: mutation.index("\n}")]
    fields = [line.strip() for line in mutation.splitlines()[1:] if re.match(r"^\s+\w+\(", line)]
    assert fields and all("(input: " in f and f.count(":") == 2 for f in fields), fields
