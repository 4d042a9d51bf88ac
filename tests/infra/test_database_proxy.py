"""RDS Proxy (infra/database_proxy.tf): present only when chosen or needed, IAM authentication
end to end and TLS required, reachable only from the task groups and reaching only the database,
its role able to do one thing, and the app role's tasks pointed at it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from service.db import POOL_RECYCLE_S

from . import policies
from .terraform import Module

ONLY_WITH_PROXY = "${local.db_proxy_enabled ? 1 : 0}"
PROXY_SG = "${aws_security_group.db_proxy[0].id}"
PROXY_RESOURCES = (
    ("aws_db_proxy", "this"),
    ("aws_db_proxy_default_target_group", "this"),
    ("aws_db_proxy_target", "this"),
    ("aws_iam_role", "db_proxy"),
    ("aws_iam_role_policy", "db_proxy"),
    ("aws_security_group", "db_proxy"),
    ("aws_vpc_security_group_egress_rule", "db_proxy_to_db"),
    ("aws_vpc_security_group_ingress_rule", "db_from_db_proxy"),
)


def _proxy(tf: Module) -> dict[str, Any]:
    return tf.resource("aws_db_proxy", "this")


def _rules_of(tf: Module, kind: str, group: str) -> dict[str, dict[str, Any]]:
    return {
        name: rule
        for name, rule in tf.resources[f"aws_vpc_security_group_{kind}_rule"].items()
        if rule["security_group_id"] == group
    }


@pytest.mark.parametrize(("type_", "name"), PROXY_RESOURCES)
def test_proxy_resources_exist_only_when_the_proxy_is_on(tf: Module, type_: str, name: str) -> None:
    assert tf.resource(type_, name)["count"] == ONLY_WITH_PROXY


def test_proxy_per_task_rules_exist_only_when_the_proxy_is_on(tf: Module) -> None:
    assert tf.locals["db_proxy_client_groups"] == (
        "${{for name, id in local.task_security_groups : name => id if local.db_proxy_enabled}}"
    )
    for kind, name in (("egress", "task_to_db_proxy"), ("ingress", "db_proxy_from_task")):
        rule = tf.resource(f"aws_vpc_security_group_{kind}_rule", name)
        assert rule["for_each"] == "${local.db_proxy_client_groups}"


def test_proxy_requires_iam_authentication_and_tls(tf: Module) -> None:
    proxy = _proxy(tf)
    assert proxy["engine_family"] == "POSTGRESQL"
    # End-to-end IAM: clients log in with IAM tokens, and so does the proxy to the instance.
    assert proxy["default_auth_scheme"] == "IAM_AUTH"
    assert "auth" not in proxy, "no Secrets Manager secret: picforge_app has no password"
    assert proxy["require_tls"] is True
    assert proxy["debug_logging"] is False, "debug logging writes statements to the logs"
    # The pools hold idle connections; the proxy should close them as late as AWS allows,
    # and the pools replace theirs before it does.
    assert proxy["idle_client_timeout"] == 28800
    assert proxy["idle_client_timeout"] > POOL_RECYCLE_S
    assert tf.resource("aws_db_instance", "this")["iam_database_authentication_enabled"] is True


def test_proxy_fronts_the_instance_from_the_private_subnets(tf: Module) -> None:
    proxy = _proxy(tf)
    assert proxy["vpc_subnet_ids"] == "${aws_subnet.private[*].id}"
    assert proxy["vpc_security_group_ids"] == [PROXY_SG]
    assert proxy["role_arn"] == "${aws_iam_role.db_proxy[0].arn}"
    target = tf.resource("aws_db_proxy_target", "this")
    assert target["db_instance_identifier"] == "${aws_db_instance.this.identifier}"
    assert target["target_group_name"] == "${aws_db_proxy_default_target_group.this[0].name}"
    (pool,) = tf.resource("aws_db_proxy_default_target_group", "this")["connection_pool_config"]
    assert pool["connection_borrow_timeout"] <= 30, "a waiting request is answered, not hung"


def test_proxy_accepts_only_the_task_groups_on_5432(tf: Module) -> None:
    (rule,) = _rules_of(tf, "ingress", PROXY_SG).values()
    assert rule["for_each"] == "${local.db_proxy_client_groups}"
    assert rule["referenced_security_group_id"] == "${each.value}"
    assert tf.resolve(rule["from_port"]) == tf.resolve(rule["to_port"]) == 5432
    assert "cidr_ipv4" not in rule and "cidr_ipv6" not in rule


def test_proxy_reaches_only_the_database_on_5432(tf: Module) -> None:
    (rule,) = _rules_of(tf, "egress", PROXY_SG).values()
    assert rule["referenced_security_group_id"] == "${aws_security_group.db.id}"
    assert tf.resolve(rule["from_port"]) == tf.resolve(rule["to_port"]) == 5432
    inbound = tf.resource("aws_vpc_security_group_ingress_rule", "db_from_db_proxy")
    assert inbound["security_group_id"] == "${aws_security_group.db.id}"
    assert inbound["referenced_security_group_id"] == PROXY_SG


def test_tasks_reach_the_proxy_and_the_worker_no_longer_the_instance(tf: Module) -> None:
    to_proxy = tf.resource("aws_vpc_security_group_egress_rule", "task_to_db_proxy")
    assert to_proxy["referenced_security_group_id"] == PROXY_SG
    assert tf.resolve(to_proxy["from_port"]) == tf.resolve(to_proxy["to_port"]) == 5432
    to_db = tf.resource("aws_vpc_security_group_egress_rule", "task_to_db")
    assert to_db["for_each"] == "${local.db_direct_security_groups}"
    # With the proxy only the api group (the migrate and keys tasks' group) keeps the instance.
    direct = tf.locals["db_direct_security_groups"]
    assert '!local.db_proxy_enabled || name == "api"' in direct


def test_proxy_role_may_be_assumed_only_by_rds_for_this_account(tf: Module) -> None:
    role = tf.resource("aws_iam_role", "db_proxy")
    assert role["assume_role_policy"] == "${data.aws_iam_policy_document.db_proxy_assume.json}"
    (statement,) = tf.data_source("aws_iam_policy_document", "db_proxy_assume")["statement"]
    assert statement["actions"] == ["sts:AssumeRole"]
    assert statement["principals"] == [{"type": "Service", "identifiers": ["rds.amazonaws.com"]}]
    conditions = {(c["test"], c["variable"]): c["values"] for c in statement["condition"]}
    assert conditions[("StringEquals", "aws:SourceAccount")] == ["${local.account_id}"]
    assert conditions[("ArnLike", "aws:SourceArn")] == [
        "arn:${local.partition}:rds:${var.aws_region}:${local.account_id}:db-proxy:*"
    ]


def test_proxy_role_may_only_connect_to_the_instance_as_the_app_role(tf: Module) -> None:
    attached = tf.resource("aws_iam_role_policy", "db_proxy")
    assert attached["role"] == "${aws_iam_role.db_proxy[0].id}"
    assert attached["policy"] == "${data.aws_iam_policy_document.db_proxy.json}"
    source = tf.data_source("aws_iam_policy_document", "db_proxy")
    document = policies.policy_document(
        tf,
        source,
        {
            "data.aws_partition.current.partition": "aws",
            "data.aws_caller_identity.current.account_id": "000000000000",
            "var.aws_region": "us-east-1",
            "aws_db_instance.this.resource_id": policies.DB_RESOURCE_ID,
        },
    )
    (statement,) = document["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == ["rds-db:connect"]
    assert statement["Resource"] == [
        f"arn:aws:rds-db:us-east-1:000000000000:dbuser:{policies.DB_RESOURCE_ID}/picforge_app"
    ]
    assert "Condition" not in statement
    text = json.dumps(source)
    assert "secretsmanager" not in text and "kms:" not in text, "no secret to read"


def test_app_tasks_point_at_the_proxy_endpoint_when_there_is_one(tf: Module) -> None:
    assert tf.locals["app_db_host"] == (
        "${local.db_proxy_enabled ? aws_db_proxy.this[0].endpoint : aws_db_instance.this.address}"
    )
    environment = tf.locals["app_database_environment"]
    assert environment["PICFORGE_DB_HOST"] == "${local.app_db_host}"
    assert environment["PICFORGE_DB_AUTH"] == "iam"
    assert tf.locals["owner_database_environment"]["PICFORGE_DB_HOST"] == (
        "${aws_db_instance.this.address}"
    )
    assert tf.outputs["db_proxy_endpoint"]["value"] == (
        "${local.db_proxy_enabled ? aws_db_proxy.this[0].endpoint : null}"
    )


def test_app_tokens_are_good_for_the_proxy_when_there_is_one_and_only_then(tf: Module) -> None:
    (statement,) = tf.data_source("aws_iam_policy_document", "app_database_login")["statement"]
    assert statement["actions"] == ["rds-db:connect"]
    assert statement["resources"] == ["${local.app_db_login_arn}"]
    assert tf.locals["app_db_login_arn"] == (
        "arn:${local.partition}:rds-db:${var.aws_region}:${local.account_id}:dbuser:"
        "${local.app_db_login_resource_id}/${local.app_db_user}"
    )
    assert tf.locals["app_db_login_resource_id"] == f"${{{policies.APP_LOGIN_RESOURCE_ID}}}"


def test_proxy_resource_id_is_the_last_part_of_its_arn(tf: Module) -> None:
    """IAM names a proxy by its resource id (prx-...), which only its ARN carries."""
    expression = tf.locals["db_proxy_resource_id"]
    match = re.fullmatch(
        r'\$\{local\.db_proxy_enabled \? element\(split\(":", aws_db_proxy\.this\[0\]\.arn\), '
        r"(\d+)\) : null\}",
        expression,
    )
    assert match, expression
    arn = "arn:aws:rds:eu-west-1:111111111111:db-proxy:prx-0123456789abcdef0"
    assert arn.split(":")[int(match.group(1))] == "prx-0123456789abcdef0"


def test_provider_is_new_enough_for_end_to_end_iam(tf: Module) -> None:
    """aws_db_proxy's default_auth_scheme arrived in the AWS provider 6.15."""
    (block,) = tf.terraform
    version = block["required_providers"][0]["aws"]["version"]
    pinned = re.fullmatch(r"~> (\d+)\.(\d+)", version)
    assert pinned, version
    assert (int(pinned.group(1)), int(pinned.group(2))) >= (6, 15)
