"""House style of the root module: its files, typed and described variables and outputs."""

from __future__ import annotations

import re

import pytest

from .terraform import INFRA_DIR, Module, parse_file

REQUIRED_FILES = {"main.tf", "variables.tf", "outputs.tf", "versions.tf", "providers.tf"}
ENVIRONMENTS = ("dev", "prod")
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=(?P<check>[A-Z0-9_]+)(?P<rest>.*)$")


def test_layout_has_the_standard_files() -> None:
    present = {path.name for path in INFRA_DIR.glob("*.tf")}
    assert present >= REQUIRED_FILES, f"missing {sorted(REQUIRED_FILES - present)}"


def test_layout_declares_variables_and_outputs_only_in_their_files(tf: Module) -> None:
    for name, parsed in tf.files.items():
        if name != "variables.tf":
            assert "variable" not in parsed, f"{name} declares variables"
        if name != "outputs.tf":
            assert "output" not in parsed, f"{name} declares outputs"


def test_layout_pins_terraform_and_the_aws_provider(tf: Module) -> None:
    (block,) = tf.terraform
    assert block["required_version"].startswith(">=")
    aws = block["required_providers"][0]["aws"]
    assert aws["source"] == "hashicorp/aws"
    assert re.fullmatch(r"~> 6\.\d+", aws["version"]), aws["version"]
    assert "s3" in block["backend"][0], "state belongs in an S3 backend (partial config)"


def test_variables_all_have_type_and_description(tf: Module) -> None:
    assert tf.variables
    for name, body in tf.variables.items():
        assert body.get("type"), f"variable {name} has no type"
        assert str(body.get("description", "")).strip(), f"variable {name} has no description"


def test_outputs_all_have_description(tf: Module) -> None:
    assert tf.outputs
    for name, body in tf.outputs.items():
        assert str(body.get("description", "")).strip(), f"output {name} has no description"


def test_lone_resources_of_a_type_are_named_this(tf: Module) -> None:
    # NOTE: the exceptions configure one bucket or queue and are named after it, like their
    # siblings (aws_s3_bucket_policy.uploads next to aws_s3_bucket_cors_configuration.uploads).
    named_after_their_target = {
        "aws_s3_bucket_cors_configuration",
        "aws_s3_bucket_notification",
        "aws_sqs_queue_policy",
        "aws_sqs_queue_redrive_allow_policy",
    }
    misnamed = [
        f"{type_}.{name}"
        for type_, named in tf.resources.items()
        for name in named
        if len(named) == 1 and name != "this" and type_ not in named_after_their_target
    ]
    assert not misnamed, f"a lone resource of its type is named `this`: {misnamed}"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_tfvars_set_only_declared_variables_and_every_required_one(
    tf: Module, environment: str
) -> None:
    values = parse_file(INFRA_DIR / "environments" / f"{environment}.tfvars")
    undeclared = set(values) - set(tf.variables)
    assert not undeclared, f"{environment}.tfvars sets undeclared {sorted(undeclared)}"
    required = {name for name, body in tf.variables.items() if "default" not in body}
    assert required <= set(values), f"{environment}.tfvars misses {sorted(required - set(values))}"
    assert values["environment"] == environment


def test_tfvars_keep_deletion_protection_on(tf: Module) -> None:
    assert tf.variables["deletion_protection"]["default"] is True
    for environment in ENVIRONMENTS:
        values = parse_file(INFRA_DIR / "environments" / f"{environment}.tfvars")
        assert values.get("deletion_protection", True) is True, environment


def test_checkov_skips_carry_a_reason() -> None:
    skips = []
    for path in sorted(INFRA_DIR.glob("*.tf")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = SKIP_COMMENT.search(line)
            if match:
                skips.append((f"{path.name}:{number}", match))
    assert skips, "expected the documented skips"
    for where, match in skips:
        reason = match.group("rest").lstrip(":").strip()
        assert match.group("rest").startswith(":"), f"{where}: write #checkov:skip=ID: reason"
        assert len(reason) >= 30, (
            f"{where}: {match.group('check')} needs a reason a reviewer accepts"
        )
