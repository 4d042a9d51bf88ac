"""The IAM policies of the picforge task roles, read out of the Terraform as real JSON.

The end-to-end test creates IAM principals with exactly these policies in an IAM-enforcing
emulator, so the flow runs with the permissions production has, not more:

    from tests.infra.policies import role_policy_documents   # or: from infra.policies ...
    docs = role_policy_documents("worker", uploads_bucket="u", renditions_bucket="r",
                                 queue_arn="arn:aws:sqs:us-east-1:000000000000:images")

Only the references a task role's policy may contain are resolved (the two buckets' ARNs, the
queue's ARN, literal locals such as the key prefixes); anything else raises, so a new
reference in iam.tf fails loudly here instead of producing a policy that differs from AWS.

Also a CLI, printing the documents as JSON:
    python -m tests.infra.policies api --uploads-bucket u --renditions-bucket r --queue-arn ARN
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from .terraform import INFRA_DIR, Module, load_module

ROLES = {"api": "api_task", "worker": "worker_task", "keys": "keys_task"}
# Stand-ins for what only AWS knows; the emulator accepts any such ARN in a policy.
DB_RESOURCE_ID = "db-EXAMPLERESOURCEID"
APP_LOGIN_RESOURCE_ID = (
    "local.db_proxy_enabled ? local.db_proxy_resource_id : aws_db_instance.this.resource_id"
)
ENVIRONMENT = "test"

_INTERPOLATION = re.compile(r"\$\{(?P<expr>[^{}]*)\}")
_DOCUMENT_REF = re.compile(r"^\$\{data\.aws_iam_policy_document\.(?P<name>\w+)(?:\[0\])?\.json\}$")


def role_policy_documents(
    role: str,
    *,
    uploads_bucket: str,
    renditions_bucket: str,
    queue_arn: str,
    distribution_arn: str | None = None,
    module: Module | None = None,
) -> list[dict[str, Any]]:
    """Every inline policy attached to the `api`, `worker` or `keys` task role, as IAM JSON
    documents. A policy with a `count` exists only with the CDN (`enable_cdn`): it is included
    when `distribution_arn` names the distribution, and left out otherwise."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}, not {role!r}")
    module = module or load_module(INFRA_DIR)
    partition = queue_arn.split(":")[1] if queue_arn.startswith("arn:") else "aws"
    region, account = queue_arn.split(":")[3:5] if queue_arn.startswith("arn:") else ("", "")
    references = {
        "aws_s3_bucket.uploads.arn": f"arn:{partition}:s3:::{uploads_bucket}",
        "aws_s3_bucket.renditions.arn": f"arn:{partition}:s3:::{renditions_bucket}",
        "aws_sqs_queue.images.arn": queue_arn,
        # The pieces of the ARNs database_access.tf builds (the DB user, the keys' secrets).
        "data.aws_partition.current.partition": partition,
        "data.aws_caller_identity.current.account_id": account,
        "var.aws_region": region,
        "var.environment": ENVIRONMENT,
        "aws_db_instance.this.resource_id": DB_RESOURCE_ID,
        # The app role logs in to RDS Proxy only where its connection budget would not fit;
        # the emulator runs the defaults, which fit, so the tokens are for the instance.
        APP_LOGIN_RESOURCE_ID: DB_RESOURCE_ID,
    }
    if distribution_arn is not None:
        references["aws_cloudfront_distribution.this[0].arn"] = distribution_arn
    role_ref = f"${{aws_iam_role.{ROLES[role]}.id}}"
    attached = [
        (name, body)
        for name, body in module.resources.get("aws_iam_role_policy", {}).items()
        if body.get("role") in (role_ref, f"${{aws_iam_role.{ROLES[role]}.name}}")
        and ("count" not in body or distribution_arn is not None)
    ]
    if not attached:
        raise LookupError(f"no aws_iam_role_policy attached to aws_iam_role.{ROLES[role]}")
    documents = []
    for name, body in sorted(attached):
        match = _DOCUMENT_REF.match(str(body.get("policy", "")))
        if not match:
            raise ValueError(
                f"aws_iam_role_policy.{name}.policy must be data.aws_iam_policy_document.<x>.json"
            )
        source = module.data_source("aws_iam_policy_document", match.group("name"))
        documents.append(policy_document(module, source, references))
    return documents


def policy_document(
    module: Module, source: dict[str, Any], references: dict[str, str]
) -> dict[str, Any]:
    """An aws_iam_policy_document data source as an IAM JSON document."""
    unsupported = set(source) - {"statement", "__file__", "version", "count"}
    if unsupported or source.get("dynamic"):
        raise ValueError(f"unsupported policy document arguments: {sorted(unsupported)}")
    return {
        "Version": source.get("version", "2012-10-17"),
        "Statement": [_statement(module, raw, references) for raw in source["statement"]],
    }


def _statement(module: Module, raw: dict[str, Any], references: dict[str, str]) -> dict[str, Any]:
    unsupported = set(raw) - {"sid", "effect", "actions", "resources", "condition"}
    if unsupported:
        # principals/not_actions/not_resources do not belong in a task role's policy.
        raise ValueError(f"unsupported statement arguments: {sorted(unsupported)}")
    statement: dict[str, Any] = {}
    if "sid" in raw:
        statement["Sid"] = raw["sid"]
    statement["Effect"] = raw.get("effect", "Allow")
    statement["Action"] = [_value(module, item, references) for item in raw["actions"]]
    statement["Resource"] = [_value(module, item, references) for item in raw["resources"]]
    conditions: dict[str, dict[str, list[str]]] = {}
    for condition in raw.get("condition", []):
        values = [_value(module, item, references) for item in condition["values"]]
        conditions.setdefault(condition["test"], {})[condition["variable"]] = values
    if conditions:
        statement["Condition"] = conditions
    return statement


def _value(module: Module, value: Any, references: dict[str, str]) -> str:
    text = module.resolve(value)
    if not isinstance(text, str):
        raise ValueError(f"policy values must be strings, got {value!r}")

    def substitute(match: re.Match[str]) -> str:
        expr = match.group("expr").strip()
        if expr not in references:
            raise ValueError(f"cannot resolve ${{{expr}}} in {value!r}: not an ARN part it knows")
        return references[expr]

    return _INTERPOLATION.sub(substitute, text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("role", choices=sorted(ROLES))
    parser.add_argument("--uploads-bucket", required=True)
    parser.add_argument("--renditions-bucket", required=True)
    parser.add_argument("--queue-arn", required=True)
    args = parser.parse_args(argv)
    documents = role_policy_documents(
        args.role,
        uploads_bucket=args.uploads_bucket,
        renditions_bucket=args.renditions_bucket,
        queue_arn=args.queue_arn,
    )
    json.dump(documents, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
