"""Terrakube Configuration Language (TCL): a template's ``flow`` parsed into typed, frozen values.

The grammar follows Terrakube's own model (``tcl/model/Flow.java``, ``Command.java``, ``ImportCommands.java``):
``onFailure`` / ``onReject`` are step-level lists of commands, ``importCommands`` is one mapping, a command's
``priority`` defaults to 0 (Java's default, so unprioritised commands run first, as in Terrakube) and
``requireSavedPlan`` is accepted. Unlike Terrakube, unknown keys, duplicate keys and wrong types are refused
up front, with the YAML path and line of the fault, and GROOVY scripts are refused (BASH and PYTHON run).

Schedules (``scheduleTemplates``) are Quartz expressions in Terrakube; :func:`to_croniter` also accepts
standard 5-field cron and turns either into the 5-field expression our scheduler (croniter) runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import yaml
from croniter import CroniterBadDateError, croniter

from domain.errors import ValidationFailed

MAX_TCL_BYTES = 256 * 1024


class TclError(ValueError):
    """A fault in a template: ``path`` like ``flow[1].commands[0].runtime``, ``line`` 1-based (or None)."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        super().__init__(path, line, message)
        self.path, self.line, self.message = path, line, message

    def __str__(self) -> str:  # flow[1].commands[0].runtime (line 7): must be BASH or PYTHON ...
        line = f"line {self.line}" if self.line else ""
        where = f"{self.path} ({line})" if self.path and line else self.path or line
        return f"{where}: {self.message}" if where else self.message

    def describe(self) -> str:
        """The sentence shown to API users: ``line 7: `flow[1].commands[0].runtime` must be BASH or PYTHON``."""
        subject = f"`{self.path}` {self.message}" if self.path else self.message
        return f"line {self.line}: {subject}" if self.line else subject


class StepType(StrEnum):
    TERRAFORM_PLAN = "terraformPlan"
    TERRAFORM_PLAN_DESTROY = "terraformPlanDestroy"
    TERRAFORM_APPLY = "terraformApply"
    TERRAFORM_DESTROY = "terraformDestroy"
    CUSTOM_SCRIPTS = "customScripts"
    APPROVAL = "approval"
    DISABLE_WORKSPACE = "disableWorkspace"
    SCHEDULE_TEMPLATES = "scheduleTemplates"


class Runtime(StrEnum):
    BASH = "BASH"
    PYTHON = "PYTHON"


# Terrakube (TclService.isTemplatePlanOnly) counts only these as plan-only: custom scripts may change things.
PLAN_ONLY_TYPES = frozenset({StepType.TERRAFORM_PLAN, StepType.TERRAFORM_PLAN_DESTROY})


@dataclass(frozen=True)
class Command:
    runtime: Runtime
    script: str
    priority: int = 0
    before_init: bool = False
    before: bool = False
    after: bool = False
    verbose: bool = False


@dataclass(frozen=True)
class ScheduleTemplate:
    name: str
    schedule: str  # as written (Quartz or 5-field)

    @property
    def cron(self) -> str:
        """The schedule as a 5-field croniter expression."""
        return to_croniter(self.schedule)


@dataclass(frozen=True)
class ImportCommands:
    """Commands kept in ``{folder}/commands.yaml`` of a git repository (they replace the step's commands)."""

    repository: str
    folder: str = "/"
    branch: str | None = None
    vcs_id: str | None = None
    inputs_env: Mapping[str, str] = field(default_factory=dict)
    inputs_terraform: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    type: StepType
    step: int
    name: str
    team: str | None = None
    ignore_error: bool = False
    require_saved_plan: bool = False
    commands: tuple[Command, ...] = ()
    on_failure: tuple[Command, ...] = ()
    on_reject: tuple[Command, ...] = ()
    inputs_env: Mapping[str, str] = field(default_factory=dict)
    inputs_terraform: Mapping[str, str] = field(default_factory=dict)
    import_commands: ImportCommands | None = None
    templates: tuple[ScheduleTemplate, ...] = ()
    line: int | None = field(default=None, compare=False)  # where the step starts in the template


@dataclass(frozen=True)
class Flow:
    steps: tuple[Step, ...]  # ascending ``step``

    @property
    def is_plan_only(self) -> bool:
        """Only terraformPlan / terraformPlanDestroy steps: such jobs may run beside each other."""
        return all(step.type in PLAN_ONLY_TYPES for step in self.steps)

    def find(self, number: int) -> Step | None:
        return next((step for step in self.steps if step.step == number), None)


# ---------------------------------------------------------------------------------------------------- parsing

_SAFE = yaml.constructor.SafeConstructor()  # only its stateless scalar constructors and flatten_mapping are used
_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_REQUIRED: Any = object()
Reader = Callable[[yaml.Node, str], Any]


def parse_flow(text: str) -> Flow:
    """Parse and validate a TCL template; raise :class:`TclError` naming the path and line of the first fault."""
    if len(text.encode()) > MAX_TCL_BYTES:
        raise TclError("", None, f"the template must be at most {MAX_TCL_BYTES} bytes")
    try:
        return _flow(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise TclError("", mark.line + 1 if mark else None, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise TclError("", None, f"invalid YAML: {exc}") from None


def parse_commands(text: str) -> tuple[Command, ...]:
    """The file an ``importCommands`` entry points at: a ``commands:`` list (or a bare list) of
    TCL commands, validated like a step's own."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise TclError("", mark.line + 1 if mark else None, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise TclError("", None, f"invalid YAML: {exc}") from None
    node = root
    if isinstance(root, yaml.MappingNode):
        top = _entries(root, "")
        if "commands" not in top:
            raise _fail("commands", root, "is missing")
        node = top["commands"][1]
    if not isinstance(node, yaml.SequenceNode):
        raise _fail("commands", node, "must be a list of commands")
    return tuple(_commands(node, "commands"))


def check_tcl(text: str) -> None:
    """Refuse a template that cannot run, as ``ValidationFailed("tcl", "line N: `path` ...")``."""
    try:
        parse_flow(text)
    except TclError as err:
        raise ValidationFailed("tcl", err.describe()) from None


def _flow(root: yaml.Node | None) -> Flow:
    if not isinstance(root, yaml.MappingNode):
        raise _fail("", root, "the template must be a YAML mapping with a `flow` list")
    top = _entries(root, "")
    if "flow" not in top:
        raise _fail("flow", root, "is missing")
    for name, (key, _) in top.items():
        if name != "flow":
            raise _fail(name, key, "is not a known key (a template has only `flow`)")
    node = top["flow"][1]
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise _fail("flow", node, "must be a non-empty list of steps")
    return Flow(tuple(sorted(_steps(_items(node, "flow")), key=lambda step: step.step)))


def _steps(items: list[tuple[str, yaml.Node]]) -> list[Step]:
    for path, item in items:  # shape first: a stray scalar is the likelier fault than a step's details
        if not isinstance(item, yaml.MappingNode):
            raise _fail(path, item, "must be a mapping")
    seen: dict[int, str] = {}
    steps = []
    for path, item in items:
        step = _step(item, path)
        line = next(_line(value) for key, value in item.value if _scalar(key) == "step")
        if step.step in seen:
            raise TclError(f"{path}.step", line, f"repeats step {step.step} of {seen[step.step]}")
        seen[step.step] = f"{path}.step (line {line})"
        steps.append(step)
    return steps


def _step(node: yaml.Node, path: str) -> Step:
    values = _read(node, path, STEP_FIELDS)
    kind = values["type"]
    if kind is StepType.APPROVAL and values["team"] is None:
        raise _fail(f"{path}.team", node, "is required for an approval step (the team that may approve)")
    if kind is StepType.SCHEDULE_TEMPLATES and not values["templates"]:
        raise _fail(f"{path}.templates", node, "must list at least one template to schedule")
    return Step(**values | {"name": values["name"] or kind.value}, line=_line(node))


def _read(node: yaml.Node, path: str, spec: dict[str, tuple[Reader, Any]]) -> dict[str, Any]:
    """A mapping read by ``spec`` (camelCase key: reader, default or _REQUIRED) into snake_case keyword arguments.

    Unknown keys are refused; an explicit null counts as absent (as in Terrakube); a callable default is a factory.
    """
    entries = _entries(node, path)
    for name, (key, _) in entries.items():
        if name not in spec:
            raise _fail(_join(path, name), key, f"is not a known key (expected one of: {', '.join(spec)})")
    values = {}
    for name, (read, default) in spec.items():
        value = entries[name][1] if name in entries else None
        if value is not None and value.tag != _NULL_TAG:
            values[_snake(name)] = read(value, f"{path}.{name}")
        elif default is _REQUIRED:
            raise _fail(f"{path}.{name}", node, "is required")
        else:
            values[_snake(name)] = default() if callable(default) else default
    return values


def _snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda match: "_" + match[0].lower(), name)


# ------------------------------------------------------------------------------------------- node readers


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def _fail(path: str, node: yaml.Node | None, message: str) -> TclError:
    return TclError(path, _line(node), message)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _scalar(node: yaml.Node) -> Any:
    """A scalar resolved as PyYAML's safe_load does (YAML 1.1 ints, bools, nulls); a collection node as is."""
    if not isinstance(node, yaml.ScalarNode):
        return node
    build = _SAFE.yaml_constructors.get(node.tag, _SAFE.yaml_constructors[None])
    return build(_SAFE, node)


def _kind(node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        return "a mapping" if isinstance(node, yaml.MappingNode) else "a list"
    value = _scalar(node)
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", type(None): "empty"}
    kind = names.get(type(value), type(value).__name__)
    return kind if value is None else f"{kind} ({node.value!r})"


def _entries(node: yaml.Node, path: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A mapping's keys (strings; repeats refused; ``<<`` merges applied) to their key and value nodes."""
    if not isinstance(node, yaml.MappingNode):
        raise _fail(path, node, f"must be a mapping, not {_kind(node)}")
    first_line: dict[str, int | None] = {}
    for key, _ in node.value:
        name = _scalar(key) if key.tag != _MERGE_TAG else None
        if isinstance(name, str) and name in first_line:
            raise _fail(_join(path, name), key, f"is repeated (first at line {first_line[name]})")
        if isinstance(name, str):
            first_line[name] = _line(key)
    _SAFE.flatten_mapping(node)
    entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, value in node.value:
        name = _scalar(key)
        if not isinstance(name, str):
            raise _fail(path, key, f"has a key that is not a string: {_kind(key)}")
        entries[name] = (key, value)
    return entries


def _typed(node: yaml.Node, path: str, fits: Callable[[Any], bool], wanted: str) -> Any:
    value = _scalar(node)
    if not fits(value):
        raise _fail(path, node, f"must be {wanted}, not {_kind(node)}")
    return value


def _text(node: yaml.Node, path: str) -> str:
    if not _typed(node, path, lambda value: isinstance(value, str), "a string").strip():
        raise _fail(path, node, "must not be empty")
    return _scalar(node)


def _integer(node: yaml.Node, path: str) -> int:
    return _typed(node, path, lambda value: isinstance(value, int) and not isinstance(value, bool), "an integer")


def _positive(node: yaml.Node, path: str) -> int:
    if (value := _integer(node, path)) <= 0:
        raise _fail(path, node, "must be a positive integer")
    return value


def _flag(node: yaml.Node, path: str) -> bool:
    return _typed(node, path, lambda value: isinstance(value, bool), "true or false")


def _choice(options: type[StrEnum]) -> Reader:
    allowed = ", ".join(option.value for option in options)
    values = {option.value for option in options}
    return lambda node, path: options(_typed(node, path, lambda value: value in values, f"one of {allowed}"))


def _runtime(node: yaml.Node, path: str) -> Runtime:
    if _scalar(node) == "GROOVY":
        raise _fail(path, node, "must be BASH or PYTHON (GROOVY scripts are not supported)")
    return _choice(Runtime)(node, path)


def _items(node: yaml.Node, path: str) -> list[tuple[str, yaml.Node]]:
    if not isinstance(node, yaml.SequenceNode):
        raise _fail(path, node, f"must be a list, not {_kind(node)}")
    return [(f"{path}[{index}]", item) for index, item in enumerate(node.value)]


def _listed(read: Reader) -> Reader:
    return lambda node, path: tuple(read(item, item_path) for item_path, item in _items(node, path))


def _text_map(node: yaml.Node, path: str) -> dict[str, str]:
    is_text = lambda value: isinstance(value, str)  # noqa: E731
    return {
        name: _typed(value, f"{path}.{name}", is_text, "a string (quote it)")
        for name, (_, value) in _entries(node, path).items()
    }


def _schedule(node: yaml.Node, path: str) -> str:
    schedule = _text(node, path)
    try:
        to_croniter(schedule)
    except ValueError as exc:
        raise _fail(path, node, f"is not a valid cron expression: {exc}") from None
    return schedule


COMMAND_FIELDS: dict[str, tuple[Reader, Any]] = {
    "runtime": (_runtime, _REQUIRED), "priority": (_integer, 0), "beforeInit": (_flag, False),
    "before": (_flag, False), "after": (_flag, False), "verbose": (_flag, False), "script": (_text, _REQUIRED),
}
TEMPLATE_FIELDS: dict[str, tuple[Reader, Any]] = {"name": (_text, _REQUIRED), "schedule": (_schedule, _REQUIRED)}
IMPORT_FIELDS: dict[str, tuple[Reader, Any]] = {
    "repository": (_text, _REQUIRED), "folder": (_text, "/"), "branch": (_text, None), "vcsId": (_text, None),
    "inputsEnv": (_text_map, dict), "inputsTerraform": (_text_map, dict),
}
_commands = _listed(lambda node, path: Command(**_read(node, path, COMMAND_FIELDS)))
STEP_FIELDS: dict[str, tuple[Reader, Any]] = {
    "type": (_choice(StepType), _REQUIRED), "name": (_text, None), "step": (_positive, _REQUIRED),
    "team": (_text, None), "ignoreError": (_flag, False), "requireSavedPlan": (_flag, False),
    "commands": (_commands, ()), "onFailure": (_commands, ()), "onReject": (_commands, ()),
    "inputsEnv": (_text_map, dict), "inputsTerraform": (_text_map, dict),
    "importCommands": (lambda node, path: ImportCommands(**_read(node, path, IMPORT_FIELDS)), None),
    "templates": (_listed(lambda node, path: ScheduleTemplate(**_read(node, path, TEMPLATE_FIELDS))), ()),
}


# ---------------------------------------------------------------------------------------------------- cron

_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))  # minute, hour, day of month, month, day of week


def to_croniter(expr: str) -> str:
    """A 5-field croniter expression for a standard (5-field) or Quartz (6-7 field) cron expression.

    Quartz: ``seconds minutes hours day-of-month month day-of-week [year]``. Seconds must be ``0`` (schedules
    run at most once a minute; other seconds are refused, not rounded), a year must be ``*``, ``?`` becomes
    ``*``, Quartz day-of-week numbers 1-7 (1 = Sunday) become 0-6, ``nL`` becomes ``Ln``, ``n#k`` keeps its
    ``#k``. ``a/s`` steps become ``a-max/s`` (``*/s`` when ``a`` is the field's minimum).
    Raises ValueError when the expression is not valid.
    """
    fields = expr.upper().split()
    if len(fields) in (6, 7):
        fields = _from_quartz(fields)
    elif len(fields) != 5:
        raise ValueError(f"expected 5 fields (cron) or 6-7 fields (Quartz), found {len(fields)}")
    fields = ["*" if value == "?" else value for value in fields]
    result = " ".join(_expand_steps(value, low, high) for value, (low, high) in zip(fields, _RANGES, strict=True))
    try:
        croniter(result, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"{expr.strip()!r} never fires") from None
    except ValueError as exc:  # croniter's errors are ValueErrors: "[61 * * * *] is not acceptable, out of range"
        raise ValueError(str(exc)) from None
    return result


def _from_quartz(fields: list[str]) -> list[str]:
    seconds, minute, hour, day, month, weekday, *year = fields
    if seconds not in ("0", "00"):
        raise ValueError("the seconds field must be 0 (schedules run at most once a minute)")
    if year and year[0] != "*":
        raise ValueError("a Quartz year field must be *")
    return [minute, hour, day, month, ",".join(_quartz_weekday(part) for part in weekday.split(","))]


def _quartz_weekday(part: str) -> str:
    base, slash, step = part.partition("/")
    if base == "L":
        base = "7"  # Quartz: L alone in day-of-week is its last day, Saturday
    if match := re.fullmatch(r"(\d+)L", base):
        return f"L{_shift_weekday(match[1])}"
    if "#" in base:
        day, _, nth = base.partition("#")
        return f"{_shift_weekday(day)}#{nth}"
    shifted = "-".join(_shift_weekday(bound) for bound in base.split("-")) if base not in ("", "*") else base
    return f"{shifted}{slash}{step}"


def _shift_weekday(token: str) -> str:
    if not token.isdigit():
        return token  # a name (MON) means the same in both dialects
    if not 1 <= int(token) <= 7:
        raise ValueError(f"Quartz day-of-week numbers are 1-7 (1 = Sunday), found {token}")
    return str(int(token) - 1)


def _expand_steps(value: str, low: int, high: int) -> str:
    parts = []
    for part in value.split(","):
        base, slash, step = part.partition("/")
        if slash and base.isdigit():
            base = "*" if int(base) == low else f"{base}-{high}"
        parts.append(f"{base}{slash}{step}")
    return ",".join(parts)
