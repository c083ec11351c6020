"""Terrakube Configuration Language: what a template author sees when saving a template or running a job."""

from __future__ import annotations

import pytest

from domain.default_templates import DEFAULT_TEMPLATES
from domain.errors import ValidationFailed
from domain.tcl import (
    Command,
    ImportCommands,
    Runtime,
    ScheduleTemplate,
    StepType,
    TclError,
    check_tcl,
    parse_flow,
    to_croniter,
)

TERRAKUBE_STYLE = """\
flow:
  - type: "terraformApply"
    step: 300
  - name: "Plan with tags"
    type: "terraformPlan"
    step: 100
    ignoreError: true
    inputsEnv:
      TF_LOG: "INFO"
    inputsTerraform:
      SIZE: "$SIZE_SMALL"
    commands:
      - runtime: "BASH"
        priority: 200
        before: true
        script: |
          cd $workingDirectory
          terratag -tags='{"env": "dev"}'
      - runtime: "PYTHON"
        priority: 100
        beforeInit: true
        verbose: true
        script: print("hello")
      - runtime: BASH
        after: true
        script: echo done
    onFailure:
      - runtime: "BASH"
        script: echo "plan failed"
  - type: "approval"
    step: 200
    team: "platform"
    onReject:
      - runtime: "BASH"
        script: echo rejected
  - type: "customScripts"
    step: 250
    importCommands:
      repository: "https://github.com/AzBuilder/terrakube-extensions"
      folder: "templates/terratag"
      branch: "import-template"
  - type: "scheduleTemplates"
    step: 400
    templates:
      - name: "schedule1"
        schedule: "0 0/5 * ? * * *"
      - name: "schedule2"
        schedule: "*/5 * * * *"
"""


@pytest.mark.parametrize("name,description,tcl", DEFAULT_TEMPLATES, ids=[t[0] for t in DEFAULT_TEMPLATES])
def test_every_default_template_parses(name: str, description: str, tcl: str) -> None:
    flow = parse_flow(tcl)
    check_tcl(tcl)
    assert description and flow.steps
    assert flow.is_plan_only is (name == "Plan")


def test_default_templates_mirror_terrakube() -> None:
    shapes = {
        name: [(step.type.value, step.step, step.team) for step in parse_flow(tcl).steps]
        for name, _, tcl in DEFAULT_TEMPLATES
    }
    assert shapes == {
        "Plan": [("terraformPlan", 100, None)],
        "Plan and apply": [("terraformPlan", 100, None), ("terraformApply", 200, None)],
        "Destroy": [("terraformDestroy", 100, None)],
        "Terraform-Plan/Apply-Cli": [
            ("terraformPlan", 100, None), ("approval", 150, "TERRAFORM_CLI"), ("terraformApply", 200, None)
        ],
        "Terraform-Plan/Destroy-Cli": [
            ("terraformPlanDestroy", 100, None), ("approval", 150, "TERRAFORM_CLI"), ("terraformApply", 200, None)
        ],
    }


def test_a_terrakube_style_template_keeps_every_value() -> None:
    flow = parse_flow(TERRAKUBE_STYLE)
    assert [step.step for step in flow.steps] == [100, 200, 250, 300, 400]
    plan, approval, scripts, apply, schedule = flow.steps
    assert (plan.type, plan.name, plan.ignore_error, plan.line) == (StepType.TERRAFORM_PLAN, "Plan with tags", True, 4)
    assert plan.inputs_env == {"TF_LOG": "INFO"} and plan.inputs_terraform == {"SIZE": "$SIZE_SMALL"}
    assert plan.commands == (
        Command(Runtime.BASH, "cd $workingDirectory\nterratag -tags='{\"env\": \"dev\"}'\n", priority=200, before=True),
        Command(Runtime.PYTHON, 'print("hello")', priority=100, before_init=True, verbose=True),
        Command(Runtime.BASH, "echo done", priority=0, after=True),
    )
    assert plan.on_failure == (Command(Runtime.BASH, 'echo "plan failed"'),)
    assert (approval.team, approval.on_reject) == ("platform", (Command(Runtime.BASH, "echo rejected"),))
    assert scripts.import_commands == ImportCommands(
        repository="https://github.com/AzBuilder/terrakube-extensions", folder="templates/terratag",
        branch="import-template",
    )
    assert (apply.type, apply.name, apply.ignore_error, apply.commands) == (
        StepType.TERRAFORM_APPLY, "terraformApply", False, ()
    )
    assert schedule.templates == (
        ScheduleTemplate("schedule1", "0 0/5 * ? * * *"), ScheduleTemplate("schedule2", "*/5 * * * *")
    )
    assert [template.cron for template in schedule.templates] == ["*/5 * * * *", "*/5 * * * *"]
    assert flow.find(250) is scripts and flow.find(999) is None
    assert not flow.is_plan_only


def test_yaml_1_1_scalars_anchors_and_merge_keys_work_as_in_terrakube() -> None:
    flow = parse_flow(
        "flow:\n"
        "  - type: terraformPlan\n"
        "    step: 100\n"
        "    ignoreError: yes\n"
        "    commands: &notify\n"
        "      - {runtime: BASH, script: echo hi}\n"
        "  - <<: {type: terraformApply, name: shared}\n"
        "    step: 200\n"
        "    name: own\n"
        "    commands: *notify\n"
    )
    plan, apply = flow.steps
    assert plan.ignore_error is True and apply.commands == plan.commands
    assert (apply.type, apply.name) == (StepType.TERRAFORM_APPLY, "own")


@pytest.mark.parametrize(
    "steps,plan_only",
    [
        ("[{type: terraformPlan, step: 1}, {type: terraformPlanDestroy, step: 2}]", True),
        ("[{type: terraformPlan, step: 1}, {type: customScripts, step: 2}]", False),
        ("[{type: terraformPlan, step: 1}, {type: approval, step: 2, team: ops}]", False),
        ("[{type: disableWorkspace, step: 1}]", False),
    ],
)
def test_plan_only_flows_follow_terrakube(steps: str, plan_only: bool) -> None:
    assert parse_flow(f"flow: {steps}\n").is_plan_only is plan_only


STEP = "flow:\n  - type: customScripts\n    step: 100\n"
CMD = STEP + "    commands:\n      - runtime: BASH\n"


@pytest.mark.parametrize(
    "tcl,path,line,fragment",
    [
        (STEP + "    tpye: terraformPlan\n", "flow[0].tpye", 4, "is not a known key"),
        (CMD + "        script: x\n        onFailure: true\n", "flow[0].commands[0].onFailure", 7, "not a known key"),
        ("flow:\n  - {type: terraformPlan, step: 1}\nvariables: {}\n", "variables", 3, "not a known key"),
        ("flow:\n  - type: terraformPlan\n    step: \"abc\"\n", "flow[0].step", 3, "must be an integer"),
        ("flow:\n  - type: terraformPlan\n    step: -5\n", "flow[0].step", 3, "positive"),
        (STEP + "    ignoreError: \"yes\"\n", "flow[0].ignoreError", 4, "must be true or false"),
        (STEP + "    commands: {}\n", "flow[0].commands", 4, "must be a list"),
        (STEP + "    inputsEnv:\n      COUNT: 3\n", "flow[0].inputsEnv.COUNT", 5, "must be a string (quote it)"),
        ("flow:\n  - type: terraformPlan\n", "flow[0].step", 2, "is required"),
        ("flow:\n  - step: 1\n", "flow[0].type", 2, "is required"),
        ("flow:\n  - type: policyEvaluation\n    step: 1\n", "flow[0].type", 2, "must be one of terraformPlan"),
        (
            "flow:\n  - type: terraformPlan\n    step: 100\n  - type: terraformApply\n    step: 100\n",
            "flow[1].step", 5, "repeats step 100 of flow[0].step (line 3)",
        ),
        (STEP + "    step: 200\n", "flow[0].step", 4, "is repeated (first at line 3)"),
        ("flow:\n  - type: approval\n    step: 150\n", "flow[0].team", 2, "required for an approval step"),
        (CMD.replace("BASH", "GROOVY") + "        script: x\n", "flow[0].commands[0].runtime", 5, "GROOVY"),
        (CMD.replace("BASH", "bash") + "        script: x\n", "flow[0].commands[0].runtime", 5, "BASH, PYTHON"),
        (CMD, "flow[0].commands[0].script", 5, "is required"),
        (CMD + "        script: \"  \"\n", "flow[0].commands[0].script", 6, "must not be empty"),
        ("flow:\n  - type: scheduleTemplates\n    step: 1\n", "flow[0].templates", 2, "at least one template"),
        (
            "flow:\n  - type: scheduleTemplates\n    step: 1\n    templates:\n      - name: a\n"
            "        schedule: \"0 0 25 * * ?\"\n",
            "flow[0].templates[0].schedule", 6, "is not a valid cron expression",
        ),
        (
            "flow:\n  - type: scheduleTemplates\n    step: 1\n    templates:\n      - schedule: \"* * * * *\"\n",
            "flow[0].templates[0].name", 5, "is required",
        ),
        (STEP + "    importCommands:\n      - repository: x\n", "flow[0].importCommands", 5, "must be a mapping"),
    ],
)
def test_a_fault_is_refused_with_its_path_and_line(tcl: str, path: str, line: int, fragment: str) -> None:
    with pytest.raises(TclError) as exc:
        parse_flow(tcl)
    assert (exc.value.path, exc.value.line) == (path, line)
    assert fragment in exc.value.message
    assert str(exc.value).startswith(f"{path} (line {line}): ")


def test_tcl_error_reads_like_a_sentence() -> None:
    with pytest.raises(ValueError) as exc:
        parse_flow(CMD.replace("BASH", "GROOVY") + "        script: println 'x'\n")
    assert str(exc.value) == (
        "flow[0].commands[0].runtime (line 5): must be BASH or PYTHON (GROOVY scripts are not supported)"
    )


@pytest.mark.parametrize(
    "tcl,message",
    [
        (CMD + "        script: x\n        priority: high\n",
         "line 7: `flow[0].commands[0].priority` must be an integer, not a string ('high')"),
        ("flow: {}\n", "line 1: `flow` must be a non-empty list of steps"),
        ("flow:\n  - type: terraformPlan\n    step: [100\n", "line 4: invalid YAML: "),
        ("", "the template must be a YAML mapping with a `flow` list"),
    ],
)
def test_check_tcl_reports_a_validation_error_on_the_tcl_field(tcl: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        check_tcl(tcl)
    assert exc.value.field == "tcl" and exc.value.message.startswith(message)


@pytest.mark.parametrize(
    "quartz,cron",
    [
        ("0 0 12 * * ?", "0 12 * * *"),
        ("0 15 10 ? * MON-FRI", "15 10 * * MON-FRI"),
        ("0 0/5 * ? * * *", "*/5 * * * *"),
        ("0 10/15 * * * ?", "10-59/15 * * * *"),
        ("0 0 8 ? * 2-6", "0 8 * * 1-5"),  # Quartz counts Sunday as 1
        ("0 0 8 ? * 6L", "0 8 * * L5"),  # last Friday of the month
        ("0 0 8 ? * 6#3", "0 8 * * 5#3"),  # third Friday
        ("0 30 6 L * ? *", "30 6 L * *"),
        ("*/5 * * * *", "*/5 * * * *"),
        ("15 10 * * mon-fri", "15 10 * * MON-FRI"),
    ],
)
def test_quartz_and_standard_cron_become_croniter_expressions(quartz: str, cron: str) -> None:
    assert to_croniter(quartz) == cron


@pytest.mark.parametrize(
    "expr,reason",
    [
        ("30 0 12 * * ?", "seconds field must be 0"),  # refused, not rounded: it would silently change the time
        ("0 0 12 * * ? 2030", "year field must be *"),
        ("0 0 12 ? * 8", "1-7"),
        ("0 0 31 2 ?", "never fires"),
        ("0 12 * *", "found 4"),
        ("61 * * * *", "out of range"),
        ("every day", "found 2"),
    ],
)
def test_invalid_cron_is_refused_with_a_reason(expr: str, reason: str) -> None:
    with pytest.raises(ValueError) as exc:
        to_croniter(expr)
    assert reason in str(exc.value)


def test_parse_commands_of_an_import_file() -> None:
    from domain.tcl import parse_commands

    listed = parse_commands("commands:\n  - runtime: PYTHON\n    script: print(1)\n    after: true\n")
    assert [(c.runtime.value, c.after) for c in listed] == [("PYTHON", True)]
    assert len(parse_commands("- runtime: BASH\n  script: echo hi\n")) == 1
    with pytest.raises(TclError) as refused:
        parse_commands("commands:\n  - runtime: GROOVY\n    script: x\n")
    assert "commands[0].runtime" in str(refused.value)
