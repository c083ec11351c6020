"""Terrakube Configuration Language: the structural checks every template passes.

The full flow grammar (step types, commands, runtimes) arrives with the job engine; this
module already refuses what can never run: bad YAML, or a document without a ``flow`` list.
"""

from __future__ import annotations

import yaml

from domain.errors import ValidationFailed

MAX_TCL_BYTES = 256 * 1024


def _fail(message: str, node: yaml.Node | None = None, mark: yaml.Mark | None = None) -> ValidationFailed:
    where = mark or (node.start_mark if node is not None else None)
    line = f"line {where.line + 1}: " if where is not None else ""
    return ValidationFailed("tcl", f"{line}{message}")


def check_tcl(text: str) -> None:
    if len(text.encode()) > MAX_TCL_BYTES:
        raise ValidationFailed("tcl", f"tcl must be at most {MAX_TCL_BYTES} bytes")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        yaml.safe_load(text)  # also resolves tags and anchors the way the job engine will
    except yaml.MarkedYAMLError as exc:
        raise _fail(f"invalid YAML: {exc.problem}", mark=exc.problem_mark) from None
    except yaml.YAMLError as exc:
        raise ValidationFailed("tcl", f"invalid YAML: {exc}") from None
    if not isinstance(root, yaml.MappingNode):
        raise _fail("the template must be a YAML mapping with a `flow` list", root)
    flow = next((value for key, value in root.value if key.value == "flow"), None)
    if flow is None:
        raise _fail("`flow` is missing", root)
    if not isinstance(flow, yaml.SequenceNode) or not flow.value:
        raise _fail("`flow` must be a non-empty list of steps", flow)
    for index, step in enumerate(flow.value):
        if not isinstance(step, yaml.MappingNode):
            raise _fail(f"`flow[{index}]` must be a mapping", step)
