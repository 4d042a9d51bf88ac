"""tests/infra/policies.py: the task roles' policies as the IAM JSON the emulator test uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from . import policies
from .terraform import Module, load_module

UPLOADS = "pf-uploads"
RENDITIONS = "pf-renditions"
QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:pf-images"


def _documents(role: str, module: Module | None = None) -> list[dict[str, object]]:
    return policies.role_policy_documents(
        role,
        uploads_bucket=UPLOADS,
        renditions_bucket=RENDITIONS,
        queue_arn=QUEUE_ARN,
        module=module,
    )


def _grants(documents: list[dict[str, object]]) -> set[tuple[str, str]]:
    return {
        (action, resource)
        for document in documents
        for statement in document["Statement"]  # type: ignore[attr-defined]
        if statement["Effect"] == "Allow"
        for action in statement["Action"]
        for resource in statement["Resource"]
    }


APP_DB_USER_ARN = (
    f"arn:aws:rds-db:us-east-1:000000000000:dbuser:{policies.DB_RESOURCE_ID}/picforge_app"
)


def test_role_policy_documents_returns_the_api_grants_resolved() -> None:
    documents = _documents("api")
    assert {document["Version"] for document in documents} == {"2012-10-17"}
    assert _grants(documents) == {
        ("rds-db:connect", APP_DB_USER_ARN),
        ("s3:PutObject", "arn:aws:s3:::pf-uploads/originals/*"),
        ("s3:DeleteObjectVersion", "arn:aws:s3:::pf-uploads/originals/*"),
        # Multipart uploads: resume and the size check before completing; abort.
        ("s3:ListMultipartUploadParts", "arn:aws:s3:::pf-uploads/originals/*"),
        ("s3:AbortMultipartUpload", "arn:aws:s3:::pf-uploads/originals/*"),
        ("s3:GetObject", "arn:aws:s3:::pf-renditions/renditions/*"),
        ("s3:DeleteObject", "arn:aws:s3:::pf-renditions/renditions/*"),
        ("s3:DeleteObjectVersion", "arn:aws:s3:::pf-renditions/renditions/*"),
        ("s3:ListBucket", "arn:aws:s3:::pf-uploads"),
        ("s3:ListBucket", "arn:aws:s3:::pf-renditions"),
        ("s3:ListBucketVersions", "arn:aws:s3:::pf-uploads"),
        ("s3:ListBucketVersions", "arn:aws:s3:::pf-renditions"),
        ("sqs:SendMessage", QUEUE_ARN),
    }


def test_role_policy_documents_returns_the_worker_grants_resolved() -> None:
    assert _grants(_documents("worker")) == {
        ("rds-db:connect", APP_DB_USER_ARN),
        ("sqs:SendMessage", QUEUE_ARN),
        ("s3:GetObject", "arn:aws:s3:::pf-uploads/originals/*"),
        ("s3:GetObjectVersion", "arn:aws:s3:::pf-uploads/originals/*"),
        ("s3:DeleteObjectVersion", "arn:aws:s3:::pf-uploads/originals/*"),
        # The sweep aborts the multipart upload of an image that expired.
        ("s3:AbortMultipartUpload", "arn:aws:s3:::pf-uploads/originals/*"),
        ("s3:ListBucket", "arn:aws:s3:::pf-uploads"),
        ("s3:ListBucketVersions", "arn:aws:s3:::pf-uploads"),
        ("s3:ListBucketVersions", "arn:aws:s3:::pf-renditions"),
        ("s3:PutObject", "arn:aws:s3:::pf-renditions/renditions/*"),
        ("s3:DeleteObject", "arn:aws:s3:::pf-renditions/renditions/*"),
        ("s3:DeleteObjectVersion", "arn:aws:s3:::pf-renditions/renditions/*"),
        ("sqs:SendMessage", QUEUE_ARN),
        ("sqs:ReceiveMessage", QUEUE_ARN),
        ("sqs:DeleteMessage", QUEUE_ARN),
        ("sqs:ChangeMessageVisibility", QUEUE_ARN),
        ("sqs:GetQueueAttributes", QUEUE_ARN),
    }


def test_role_policy_documents_with_the_cdn_let_the_api_invalidate_only_it() -> None:
    distribution = "arn:aws:cloudfront::000000000000:distribution/E2PICFORGE"
    api = policies.role_policy_documents(
        "api",
        uploads_bucket=UPLOADS,
        renditions_bucket=RENDITIONS,
        queue_arn=QUEUE_ARN,
        distribution_arn=distribution,
    )
    worker = policies.role_policy_documents(
        "worker",
        uploads_bucket=UPLOADS,
        renditions_bucket=RENDITIONS,
        queue_arn=QUEUE_ARN,
        distribution_arn=distribution,
    )

    assert _grants(api) - _grants(_documents("api")) == {
        ("cloudfront:CreateInvalidation", distribution)
    }
    assert _grants(worker) == _grants(_documents("worker"))


def test_role_policy_documents_returns_the_keys_grants_resolved() -> None:
    prefix = f"arn:aws:secretsmanager:us-east-1:000000000000:secret:picforge-{policies.ENVIRONMENT}"
    assert _grants(_documents("keys")) == {
        (action, f"{prefix}/api-keys/*")
        for action in (
            "secretsmanager:CreateSecret",
            "secretsmanager:TagResource",
            "secretsmanager:DeleteSecret",
        )
    }


@pytest.mark.parametrize("role", ["api", "worker", "keys"])
def test_role_policy_documents_are_plain_iam_json(role: str) -> None:
    documents = _documents(role)
    text = json.dumps(documents)
    assert "${" not in text, "every Terraform reference must be resolved"
    for document in documents:
        assert set(document) == {"Version", "Statement"}
        for statement in document["Statement"]:  # type: ignore[attr-defined]
            assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
            assert statement["Effect"] in {"Allow", "Deny"}
            assert statement["Action"] and statement["Resource"]


def test_role_policy_documents_renders_conditions_in_iam_shape(tmp_path: Path) -> None:
    module = _module_with_extra_statement(
        tmp_path,
        """
  statement {
    sid       = "ListRenditions"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.renditions.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.renditions_prefix}*"]
    }
  }
""",
    )
    statement = _documents("worker", module)[0]["Statement"][-1]  # type: ignore[index]
    assert statement == {
        "Sid": "ListRenditions",
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": ["arn:aws:s3:::pf-renditions"],
        "Condition": {"StringLike": {"s3:prefix": ["renditions/*"]}},
    }


def test_role_policy_documents_refuses_a_reference_it_cannot_resolve(tmp_path: Path) -> None:
    module = _module_with_extra_statement(
        tmp_path,
        """
  statement {
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this.arn]
  }
""",
    )
    with pytest.raises(ValueError, match=r"aws_sns_topic\.this\.arn"):
        _documents("worker", module)


def test_role_policy_documents_rejects_an_unknown_role() -> None:
    with pytest.raises(ValueError, match="role must be one of"):
        policies.role_policy_documents(
            "admin", uploads_bucket=UPLOADS, renditions_bucket=RENDITIONS, queue_arn=QUEUE_ARN
        )


def test_policies_cli_prints_the_documents(capsys: pytest.CaptureFixture[str]) -> None:
    policies.main(
        [
            "api",
            "--uploads-bucket",
            UPLOADS,
            "--renditions-bucket",
            RENDITIONS,
            "--queue-arn",
            QUEUE_ARN,
        ]
    )
    assert json.loads(capsys.readouterr().out) == _documents("api")


def _module_with_extra_statement(tmp_path: Path, statement: str) -> Module:
    """A copy of infra/ whose worker policy document has one more statement at its end."""
    source = load_module().directory
    for path in source.glob("*.tf"):
        text = path.read_text(encoding="utf-8")
        if path.name == "iam.tf":
            marker = 'data "aws_iam_policy_document" "worker_task" {\n'
            assert marker in text
            head, tail = text.split(marker, 1)
            body, rest = tail.split("\n}\n", 1)
            text = f"{head}{marker}{body}\n{statement}}}\n{rest}"
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    return load_module(tmp_path)
