"""HCL string literals: the one escaping routine for every file the executor writes."""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(value: str) -> str:
    """A double-quoted HCL string literal whose value is exactly ``value``.

    Besides the usual backslash escapes, ``${`` and ``%{`` start template interpolations and
    directives in HCL; doubling the sigil makes them literal, so a variable value can never be
    evaluated as an expression.
    """
    out: list[str] = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    text = "".join(out).replace("${", "$${").replace("%{", "%%{")
    return f'"{text}"'


def is_identifier(name: str) -> bool:
    """Terraform variable names; anything else would let a key inject HCL into the file."""
    return bool(_IDENTIFIER.match(name))
