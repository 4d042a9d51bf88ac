"""VPC endpoint policies: each endpoint lets through only this account's calls to this
deployment's buckets, queue, secrets, log groups and image repository. (Parsed, not enforced:
no emulator applies endpoint policies.)"""

from __future__ import annotations

import re

from .terraform import Module

ACCOUNT_ONLY = {
    "test": "StringEquals",
    "variable": "aws:PrincipalAccount",
    "values": ["${local.account_id}"],
}


def test_every_endpoint_has_a_policy_document(tf: Module) -> None:
    assert tf.resource("aws_vpc_endpoint", "s3")["policy"] == (
        "${data.aws_iam_policy_document.s3_endpoint.json}"
    )
    assert tf.resource("aws_vpc_endpoint", "interface")["policy"] == (
        "${data.aws_iam_policy_document.interface_endpoint[each.key].json}"
    )


def test_s3_endpoint_reaches_the_two_buckets_and_ecrs_layers_only(tf: Module) -> None:
    statements = tf.data_source("aws_iam_policy_document", "s3_endpoint")["statement"]
    resources = {resource for statement in statements for resource in statement["resources"]}
    assert resources == {
        "${aws_s3_bucket.uploads.arn}",
        "${aws_s3_bucket.uploads.arn}/*",
        "${aws_s3_bucket.renditions.arn}",
        "${aws_s3_bucket.renditions.arn}/*",
        "arn:${local.partition}:s3:::prod-${var.aws_region}-starport-layer-bucket/*",
    }
    for statement in statements:
        assert ACCOUNT_ONLY in statement["condition"]
        assert all("*" not in action for action in statement["actions"])


def test_interface_endpoints_grant_per_service_on_named_resources_for_this_account(
    tf: Module,
) -> None:
    services = set(re.findall(r'"([a-z.]+)"', tf.locals["interface_endpoints"]))
    grants = tf.locals["endpoint_grants"]
    assert set(grants) == services
    for service, items in grants.items():
        for grant in items:
            for action in grant["actions"]:
                prefix = {"ecr.api": "ecr", "ecr.dkr": "ecr"}.get(service, service)
                assert action.startswith(f"{prefix}:"), f"{service}: {action}"
            if grant["resources"] == ["*"]:
                assert grant["actions"] == ["ecr:GetAuthorizationToken"], service
    assert grants["sqs"][0]["resources"] == ["${aws_sqs_queue.images.arn}"]
    assert [g["resources"] for g in grants["secretsmanager"]] == [
        ["${local.db_secret_arn}"],
        ["${local.keys_secret_arns}"],
    ]
    (document,) = [tf.data_source("aws_iam_policy_document", "interface_endpoint")]
    content = document["dynamic"][0]["statement"]["content"][0]
    assert content["condition"] == [ACCOUNT_ONLY]
