"""Security properties of the Terraform: data at rest and in transit, exposure, least privilege."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .terraform import Module

BUCKETS = ("uploads", "renditions", "logs")
# Identity policies attached to the ECS roles: no wildcard resources (but the one below).
ROLE_DOCUMENTS = (
    "execution",
    "api_task",
    "api_task_cdn",
    "worker_task",
    "app_database_login",
    "worker_task_requeue",
    "keys_task",
    "db_proxy",
)
# NOTE: ecr:GetAuthorizationToken supports no resource-level permissions; "*" is the only
# resource it accepts.
RESOURCE_WILDCARD_ALLOWED = {("ecr:GetAuthorizationToken",)}


def _ref(type_: str, name: str, attribute: str) -> str:
    return f"${{{type_}.{name}.{attribute}}}"


def _documents(tf: Module) -> dict[str, dict[str, Any]]:
    return tf.data.get("aws_iam_policy_document", {})


def _document_of(tf: Module, reference: str) -> dict[str, Any]:
    match = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)(?:\[0\])?\.json\}", reference)
    assert match, f"policies are written as aws_iam_policy_document data sources: {reference}"
    return tf.data_source("aws_iam_policy_document", match.group(1))


# --- RDS -----------------------------------------------------------------------------------


def test_rds_is_private_encrypted_and_backed_up(tf: Module) -> None:
    db = tf.resolve(tf.resource("aws_db_instance", "this"))
    assert db["publicly_accessible"] is False
    assert db["storage_encrypted"] is True
    assert db["backup_retention_period"] >= 7
    assert db["deletion_protection"] is True
    assert db["skip_final_snapshot"] is False
    assert db["final_snapshot_identifier"]
    assert db["engine"] == "postgres"
    assert db["engine_version"].split(".")[0] in {"16", "17"}


def test_rds_password_is_managed_by_rds_and_never_in_configuration(tf: Module) -> None:
    db = tf.resource("aws_db_instance", "this")
    assert db["manage_master_user_password"] is True
    assert "password" not in db
    assert "password_wo" not in db
    assert not any("password" in name for name in tf.variables)


def test_rds_forces_tls_through_its_parameter_group(tf: Module) -> None:
    db = tf.resource("aws_db_instance", "this")
    assert db["parameter_group_name"] == _ref("aws_db_parameter_group", "this", "name")
    group = tf.resource("aws_db_parameter_group", "this")
    assert group["family"] == f"postgres{db['engine_version'].split('.')[0]}"
    parameters = {p["name"]: str(p["value"]) for p in group["parameter"]}
    assert parameters["rds.force_ssl"] == "1"


def test_rds_sits_in_private_subnets_behind_its_own_security_group(tf: Module) -> None:
    db = tf.resource("aws_db_instance", "this")
    assert db["vpc_security_group_ids"] == [_ref("aws_security_group", "db", "id")]
    subnet_group = tf.resource("aws_db_subnet_group", "this")
    assert subnet_group["subnet_ids"] == "${aws_subnet.private[*].id}"


# --- S3 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bucket", BUCKETS)
def test_bucket_blocks_every_kind_of_public_access(tf: Module, bucket: str) -> None:
    block = tf.resource("aws_s3_bucket_public_access_block", bucket)
    assert block["bucket"] == _ref("aws_s3_bucket", bucket, "id")
    for setting in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert block[setting] is True, f"{bucket}: {setting}"


@pytest.mark.parametrize("bucket", BUCKETS)
def test_bucket_is_encrypted_versioned_and_without_acls(tf: Module, bucket: str) -> None:
    sse = tf.resource("aws_s3_bucket_server_side_encryption_configuration", bucket)
    assert sse["bucket"] == _ref("aws_s3_bucket", bucket, "id")
    algorithm = sse["rule"][0]["apply_server_side_encryption_by_default"][0]["sse_algorithm"]
    assert algorithm in {"AES256", "aws:kms"}
    versioning = tf.resource("aws_s3_bucket_versioning", bucket)
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"
    ownership = tf.resource("aws_s3_bucket_ownership_controls", bucket)
    assert ownership["rule"][0]["object_ownership"] == "BucketOwnerEnforced"


@pytest.mark.parametrize("bucket", BUCKETS)
def test_bucket_policy_denies_requests_without_tls(tf: Module, bucket: str) -> None:
    policy = tf.resource("aws_s3_bucket_policy", bucket)
    assert policy["bucket"] == _ref("aws_s3_bucket", bucket, "id")
    statements = _document_of(tf, policy["policy"])["statement"]
    arn = _ref("aws_s3_bucket", bucket, "arn")
    tls_only = [
        s
        for s in statements
        if s.get("effect") == "Deny"
        and s["actions"] == ["s3:*"]
        and {"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}
        in s["condition"]
    ]
    assert len(tls_only) == 1, f"{bucket}: one Deny s3:* when aws:SecureTransport is false"
    assert set(tls_only[0]["resources"]) == {arn, f"{arn}/*"}
    assert tls_only[0]["principals"] == [{"type": "*", "identifiers": ["*"]}]


def test_uploads_bucket_lifecycle_aborts_abandoned_uploads_and_expires_old_versions(
    tf: Module,
) -> None:
    rules = tf.resource("aws_s3_bucket_lifecycle_configuration", "uploads")["rule"]
    abort = [
        r["abort_incomplete_multipart_upload"][0]
        for r in rules
        if "abort_incomplete_multipart_upload" in r
    ]
    assert abort and abort[0]["days_after_initiation"] == 1
    assert any("noncurrent_version_expiration" in r for r in rules)
    assert all(r["status"] == "Enabled" for r in rules)


def test_uploads_bucket_cors_allows_browser_post_and_put_from_configured_origins(
    tf: Module,
) -> None:
    (rule,) = tf.resource("aws_s3_bucket_cors_configuration", "uploads")["cors_rule"]
    assert sorted(rule["allowed_methods"]) == ["POST", "PUT"]
    assert rule["allowed_origins"] == "${var.cors_allowed_origins}"
    assert "default" not in tf.variables["cors_allowed_origins"], (
        "origins are chosen per deployment"
    )


def test_renditions_bucket_is_readable_only_by_its_cloudfront_distribution(tf: Module) -> None:
    document = tf.data_source("aws_iam_policy_document", "renditions_bucket")
    (dynamic,) = document["dynamic"]
    content = dynamic["statement"]["content"][0]
    assert dynamic["statement"]["for_each"] == "${var.enable_cdn ? [1] : []}"
    assert content["actions"] == ["s3:GetObject"]
    assert content["principals"] == [
        {"type": "Service", "identifiers": ["cloudfront.amazonaws.com"]}
    ]
    assert content["condition"] == [
        {
            "test": "StringEquals",
            "variable": "AWS:SourceArn",
            "values": ["${aws_cloudfront_distribution.this[0].arn}"],
        }
    ]
    origin = tf.resource("aws_cloudfront_distribution", "this")["origin"][0]
    assert (
        origin["origin_access_control_id"] == "${aws_cloudfront_origin_access_control.this[0].id}"
    )


# --- IAM ------------------------------------------------------------------------------------


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = list(document.get("statement", []))
    for dynamic in document.get("dynamic", []):
        statements.extend(dynamic["statement"]["content"])
    return statements


def test_iam_allows_no_wildcard_actions(tf: Module) -> None:
    assert _documents(tf)
    for name, document in _documents(tf).items():
        for statement in _statements(document):
            if statement.get("effect", "Allow") != "Allow":
                continue  # a Deny on s3:* (TLS-only) is broad on purpose
            assert "not_actions" not in statement, f"{name}: NotAction allows too much"
            for action in statement["actions"]:
                assert "*" not in action, f"{name}: wildcard action {action!r}"


def test_iam_role_policies_name_their_resources(tf: Module) -> None:
    for name in ROLE_DOCUMENTS:
        for statement in _statements(tf.data_source("aws_iam_policy_document", name)):
            resources = statement["resources"]
            # A `[for ... : ...]` expression is one string; its items are ARNs it builds.
            items = [resources] if isinstance(resources, str) else resources
            for resource in items:
                if resource == "*":
                    assert tuple(statement["actions"]) in RESOURCE_WILDCARD_ALLOWED, (
                        f"{name}: resource '*' for {statement['actions']}"
                    )
                else:
                    assert not resource.endswith(":::*"), f"{name}: {resource} is every bucket"


def _limited_to_this_account(statement: dict[str, Any]) -> bool:
    return {
        "test": "StringEquals",
        "variable": "aws:PrincipalAccount",
        "values": ["${local.account_id}"],
    } in statement.get("condition", [])


def test_iam_resource_policies_allow_no_anonymous_principal(tf: Module) -> None:
    """A `*` principal only with a condition naming this account (the endpoint policies)."""
    for name, document in _documents(tf).items():
        for statement in _statements(document):
            if statement.get("effect", "Allow") == "Allow":
                for principal in statement.get("principals", []):
                    if principal["identifiers"] == ["*"]:
                        assert _limited_to_this_account(statement), f"{name}: Allow for everyone"


def test_iam_every_role_policy_is_an_inline_policy_document(tf: Module) -> None:
    attached = tf.resources["aws_iam_role_policy"]
    assert {body["role"] for body in attached.values()} == {
        "${aws_iam_role.execution.id}",
        "${aws_iam_role.api_task.id}",
        "${aws_iam_role.worker_task.id}",
        "${aws_iam_role.keys_task.id}",
        "${aws_iam_role.db_proxy[0].id}",
    }
    for body in attached.values():
        _document_of(tf, body["policy"])
    # Only the RDS enhanced-monitoring role gets an AWS-managed policy.
    (managed,) = tf.resources["aws_iam_role_policy_attachment"].values()
    assert managed["policy_arn"].endswith(
        ":iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
    )


def test_iam_task_roles_are_separate_from_the_execution_role(tf: Module) -> None:
    api = tf.resource("aws_ecs_task_definition", "api")
    worker = tf.resource("aws_ecs_task_definition", "worker")
    assert api["task_role_arn"] == "${aws_iam_role.api_task.arn}"
    assert worker["task_role_arn"] == "${aws_iam_role.worker_task.arn}"
    keys = tf.resource("aws_ecs_task_definition", "keys")
    assert keys["task_role_arn"] == "${aws_iam_role.keys_task.arn}"
    for definition in (api, worker, keys, tf.resource("aws_ecs_task_definition", "migrate")):
        assert definition["execution_role_arn"] == "${aws_iam_role.execution.arn}"
    assert "task_role_arn" not in tf.resource("aws_ecs_task_definition", "migrate")


def test_iam_execution_role_reads_only_the_database_secret(tf: Module) -> None:
    statements = tf.data_source("aws_iam_policy_document", "execution")["statement"]
    secret = [s for s in statements if any(a.startswith("secretsmanager:") for a in s["actions"])]
    assert secret == [
        {
            "sid": "ReadDatabaseSecret",
            "actions": ["secretsmanager:GetSecretValue"],
            "resources": ["${local.db_secret_arn}"],
        }
    ]
    assert tf.locals["db_secret_arn"] == "${aws_db_instance.this.master_user_secret[0].secret_arn}"


# --- Network exposure ---------------------------------------------------------------------


def test_only_the_alb_accepts_traffic_from_the_internet(tf: Module) -> None:
    open_rules = {
        name: rule
        for name, rule in tf.resources["aws_vpc_security_group_ingress_rule"].items()
        if rule.get("cidr_ipv4") == "0.0.0.0/0" or rule.get("cidr_ipv6") == "::/0"
    }
    assert set(open_rules) == {"alb_https", "alb_http"}
    assert all(
        r["security_group_id"] == "${aws_security_group.alb.id}" for r in open_rules.values()
    )
    assert "aws_security_group_rule" not in tf.resources, "use the per-rule VPC resources"


def test_api_accepts_only_the_alb_on_its_port(tf: Module) -> None:
    rules = [
        r
        for r in tf.resources["aws_vpc_security_group_ingress_rule"].values()
        if r["security_group_id"] == "${aws_security_group.api.id}"
    ]
    assert rules == [
        {
            "security_group_id": "${aws_security_group.api.id}",
            "description": rules[0]["description"],
            "referenced_security_group_id": "${aws_security_group.alb.id}",
            "ip_protocol": "tcp",
            "from_port": "${local.api_port}",
            "to_port": "${local.api_port}",
            "__file__": "security_groups.tf",
        }
    ]
    assert tf.locals["api_port"] == 8000


def test_database_accepts_only_the_tasks_and_the_proxy_on_5432(tf: Module) -> None:
    rules = {
        name: r
        for name, r in tf.resources["aws_vpc_security_group_ingress_rule"].items()
        if r["security_group_id"] == "${aws_security_group.db.id}"
    }
    assert set(rules) == {"db_from_task", "db_from_db_proxy"}
    assert rules["db_from_task"]["for_each"] == "${local.db_direct_security_groups}"
    assert rules["db_from_db_proxy"]["count"] == "${local.db_proxy_enabled ? 1 : 0}"
    assert rules["db_from_db_proxy"]["referenced_security_group_id"] == (
        "${aws_security_group.db_proxy[0].id}"
    )
    for rule in rules.values():
        assert tf.resolve(rule["from_port"]) == tf.resolve(rule["to_port"]) == 5432
    assert set(tf.locals["task_security_groups"]) == {"api", "worker"}
    # Without the proxy both task groups; with it, only the api's (migrate and keys run with
    # it and log in as the master user, which the proxy does not serve).
    assert tf.locals["db_direct_security_groups"] == (
        "${{for name, id in local.task_security_groups : name => id "
        'if !local.db_proxy_enabled || name == "api"}}'
    )


def test_vpc_endpoints_cover_every_aws_api_the_tasks_call(tf: Module) -> None:
    assert tf.resource("aws_vpc_endpoint", "s3")["vpc_endpoint_type"] == "Gateway"
    interface = tf.resource("aws_vpc_endpoint", "interface")
    assert interface["private_dns_enabled"] is True
    assert interface["subnet_ids"] == "${aws_subnet.private[*].id}"
    assert "${toset([" in tf.locals["interface_endpoints"]
    services = set(re.findall(r'"([a-z.]+)"', tf.locals["interface_endpoints"]))
    assert services == {"ecr.api", "ecr.dkr", "logs", "secretsmanager", "sqs"}
