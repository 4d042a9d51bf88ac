"""Routes out of the VPC: the ALB's public subnets, and with the CDN the API's way to CloudFront's
API (a global endpoint no VPC endpoint serves) through a NAT gateway. Nothing else leaves."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .terraform import INFRA_DIR, Module, parse_file

ENVIRONMENTS = sorted(path.stem for path in (INFRA_DIR / "environments").glob("*.tfvars"))
WITH_CDN = "${var.enable_cdn ? 1 : 0}"


def _values(tf: Module, environment: str) -> dict[str, Any]:
    values = {name: body.get("default") for name, body in tf.variables.items()}
    values.update(parse_file(INFRA_DIR / "environments" / f"{environment}.tfvars"))
    return values


def nat_gateways(values: dict[str, Any]) -> int:
    """How many NAT gateways network.tf makes for these settings (local.nat_gateway_count)."""
    if not values["enable_cdn"]:
        return 0
    return len(values["availability_zones"]) if values["nat_gateway_per_az"] else 1


def _mentions(body: Any, reference: str) -> bool:
    return reference in json.dumps(body)


def test_nat_gateways_exist_only_with_the_cdn(tf: Module) -> None:
    count = tf.locals["nat_gateway_count"]
    assert count == "${var.enable_cdn ? (var.nat_gateway_per_az ? length(local.azs) : 1) : 0}"
    nat = tf.resource("aws_nat_gateway", "this")
    address = tf.resource("aws_eip", "this")
    assert nat["count"] == address["count"] == "${local.nat_gateway_count}"
    assert nat["allocation_id"] == "${aws_eip.this[count.index].id}"
    assert nat["subnet_id"] == "${aws_subnet.public[count.index].id}", "NAT lives in public"
    assert address["domain"] == "vpc"
    assert tf.variables["nat_gateway_per_az"]["default"] is False


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_nat_gateways_follow_each_environment_cdn(tf: Module, environment: str) -> None:
    values = _values(tf, environment)
    expected = {"dev": 0, "prod": len(values["availability_zones"])}
    assert nat_gateways(values) == expected.get(environment, nat_gateways(values))


def test_only_the_api_route_tables_route_to_the_nat_and_only_with_the_cdn(tf: Module) -> None:
    routes = tf.resources["aws_route"]
    assert set(routes) == {"this", "api_to_nat"}
    assert routes["this"]["route_table_id"] == "${aws_route_table.public.id}"
    assert routes["this"]["gateway_id"] == "${aws_internet_gateway.this.id}"
    api = routes["api_to_nat"]
    assert api["count"] == "${var.enable_cdn ? length(local.azs) : 0}"
    assert api["route_table_id"] == "${aws_route_table.api[count.index].id}"
    assert api["destination_cidr_block"] == "0.0.0.0/0"
    assert api["nat_gateway_id"] == (
        "${aws_nat_gateway.this[var.nat_gateway_per_az ? count.index : 0].id}"
    )
    # No inline routes anywhere, so the aws_route resources above are every route there is.
    for name, table in tf.resources["aws_route_table"].items():
        assert "route" not in table, f"aws_route_table.{name} has inline routes"


def test_only_the_api_tasks_run_in_the_subnets_that_route_to_the_nat(tf: Module) -> None:
    association = tf.resource("aws_route_table_association", "api")
    assert association["subnet_id"] == "${aws_subnet.api[count.index].id}"
    assert association["route_table_id"] == "${aws_route_table.api[count.index].id}"
    users = {
        f"{type_}.{name}"
        for type_, named in tf.resources.items()
        for name, body in named.items()
        if _mentions(body, "aws_subnet.api[")
    }
    assert users == {"aws_route_table_association.api", "aws_ecs_service.api"}
    (network,) = tf.resource("aws_ecs_service", "api")["network_configuration"]
    assert network["subnets"] == "${aws_subnet.api[*].id}"


def test_worker_database_and_one_off_tasks_have_no_route_to_the_internet(tf: Module) -> None:
    private = tf.resource("aws_route_table_association", "private")
    assert private["route_table_id"] == "${aws_route_table.private.id}"
    assert not any(
        _mentions(route, "aws_route_table.private") for route in tf.resources["aws_route"].values()
    )
    (worker,) = tf.resource("aws_ecs_service", "worker")["network_configuration"]
    assert worker["subnets"] == "${aws_subnet.private[*].id}"
    assert tf.resource("aws_db_subnet_group", "this")["subnet_ids"] == "${aws_subnet.private[*].id}"
    for command in ("migrate_command", "keys_command"):
        assert _mentions(tf.outputs[command], "aws_subnet.private[*].id"), command


def test_api_subnets_are_their_own_cidrs_without_public_ips(tf: Module) -> None:
    cidrs = {
        name: tf.resource("aws_subnet", name)["cidr_block"] for name in ("public", "private", "api")
    }
    assert cidrs == {
        "public": "${cidrsubnet(var.vpc_cidr, 8, count.index)}",
        "private": "${cidrsubnet(var.vpc_cidr, 8, 100 + count.index)}",
        "api": "${cidrsubnet(var.vpc_cidr, 8, 110 + count.index)}",
    }
    assert tf.resource("aws_subnet", "api").get("map_public_ip_on_launch", False) is False


def test_s3_stays_on_the_gateway_endpoint_from_the_api_subnets_too(tf: Module) -> None:
    """Image bytes from the API never cross the NAT gateway (and its per-GB charge)."""
    endpoint = tf.resource("aws_vpc_endpoint", "s3")
    assert endpoint["route_table_ids"] == (
        "${concat([aws_route_table.private.id], aws_route_table.api[*].id)}"
    )


def test_only_the_api_may_leave_for_the_internet_on_443_and_only_with_the_cdn(
    tf: Module,
) -> None:
    rules = tf.resources["aws_vpc_security_group_egress_rule"]
    open_rules = {
        name: rule
        for name, rule in rules.items()
        if rule.get("cidr_ipv4") == "0.0.0.0/0" or rule.get("cidr_ipv6") == "::/0"
    }
    assert set(open_rules) == {"api_to_cloudfront"}
    rule = open_rules["api_to_cloudfront"]
    assert rule["count"] == WITH_CDN
    assert rule["security_group_id"] == "${aws_security_group.api.id}"
    assert (rule["ip_protocol"], rule["from_port"], rule["to_port"]) == ("tcp", 443, 443)


def test_the_cdn_invalidation_permission_and_the_network_path_come_together(tf: Module) -> None:
    """The API is told a distribution to invalidate only when it can reach CloudFront."""
    assert tf.resource("aws_iam_role_policy", "api_task_cdn")["count"] == WITH_CDN
    assert tf.resource("aws_vpc_security_group_egress_rule", "api_to_cloudfront")["count"] == (
        WITH_CDN
    )
    environment = tf.locals["api_environment"]
    assert environment["PICFORGE_CDN_DISTRIBUTION_ID"] == (
        "${var.enable_cdn ? aws_cloudfront_distribution.this[0].id : null}"
    )
