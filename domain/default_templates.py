"""The templates every new organization gets, as Terrakube creates them (OrganizationManageService).

Names, step types and step numbers match Terrakube's, because the terraform CLI remote backend picks its
templates by name ("Plan" for a speculative run, "Terraform-Plan/Apply-Cli", "Terraform-Plan/Destroy-Cli")
and the CLI templates by step numbers (plan 100, approval 150 by the TERRAFORM_CLI team, apply 200).
"""

from __future__ import annotations

PLAN = """\
flow:
  - type: "terraformPlan"
    name: "Plan"
    step: 100
"""

PLAN_AND_APPLY = """\
flow:
  - type: "terraformPlan"
    name: "Plan"
    step: 100
  - type: "terraformApply"
    name: "Apply"
    step: 200
"""

DESTROY = """\
flow:
  - type: "terraformDestroy"
    name: "Destroy"
    step: 100
"""

CLI_PLAN_APPLY = """\
flow:
  - type: "terraformPlan"
    name: "Plan (terraform CLI)"
    step: 100
  - type: "approval"
    name: "Confirm the plan (terraform CLI)"
    step: 150
    team: "TERRAFORM_CLI"
  - type: "terraformApply"
    name: "Apply (terraform CLI)"
    step: 200
"""

CLI_PLAN_DESTROY = """\
flow:
  - type: "terraformPlanDestroy"
    name: "Plan destroy (terraform CLI)"
    step: 100
  - type: "approval"
    name: "Confirm the destroy plan (terraform CLI)"
    step: 150
    team: "TERRAFORM_CLI"
  - type: "terraformApply"
    name: "Apply destroy plan (terraform CLI)"
    step: 200
"""

CLI_APPLY_TEMPLATE = "Terraform-Plan/Apply-Cli"
CLI_DESTROY_TEMPLATE = "Terraform-Plan/Destroy-Cli"
CLI_APPROVAL_TEAM = "TERRAFORM_CLI"

# (name, description, tcl)
DEFAULT_TEMPLATES: list[tuple[str, str, str]] = [
    ("Plan", "Run terraform plan", PLAN),
    ("Plan and apply", "Run terraform plan, then apply it", PLAN_AND_APPLY),
    ("Destroy", "Run terraform destroy", DESTROY),
    (CLI_APPLY_TEMPLATE, "Plan and apply started from the terraform CLI", CLI_PLAN_APPLY),
    (CLI_DESTROY_TEMPLATE, "Plan and apply a destroy started from the terraform CLI", CLI_PLAN_DESTROY),
]
