"""The contract between the Terraform and the code: commands, settings, key layout, timings."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from service.config import ApiSettings, DatabaseSettings
from service.storage import ORIGINALS_PREFIX, RENDITIONS_PREFIX
from worker.config import WorkerSettings

from .terraform import INFRA_DIR, Module

# On AWS the database comes as parts, with TLS verified against RDS's CA bundle: these must be
# set even though the code has defaults for most of them. The api and worker log in as the app
# role with IAM tokens; migrate and keys as the owner, with the RDS-managed secret.
DATABASE_PARTS = {
    "PICFORGE_DB_HOST",
    "PICFORGE_DB_PORT",
    "PICFORGE_DB_NAME",
    "PICFORGE_DB_USER",
    "PICFORGE_DB_SSLMODE",
    "PICFORGE_DB_SSLROOTCERT",
}
APP_LOGIN = {"PICFORGE_DB_AUTH": "iam", "PICFORGE_DB_USER": "picforge_app"}
SETTINGS: dict[str, type[BaseSettings]] = {
    "api": ApiSettings,
    "worker": WorkerSettings,
    "migrate": DatabaseSettings,
    "keys": DatabaseSettings,
}
OWNER_TASKS = ("migrate", "keys")
RDS_CA_BUNDLE = "/etc/ssl/certs/rds-global-bundle.pem"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
APP_CA_BUNDLE = "${local.db_proxy_enabled ? local.public_ca_bundle : local.rds_ca_bundle}"


def variable(field_name: str) -> str:
    return f"PICFORGE_{field_name.upper()}"


def required_settings(settings: type[BaseSettings]) -> set[str]:
    """What the code cannot start without (fields with no default), with the database as
    parts instead of a URL."""
    required = {
        variable(name) for name, field in settings.model_fields.items() if field.is_required()
    }
    return required | DATABASE_PARTS


SECRET_SETTINGS = {"PICFORGE_DB_USER": "username", "PICFORGE_DB_PASSWORD": "password"}
COMMANDS = {
    "api": [
        "picforge", "serve", "--host", "0.0.0.0", "--port", "8000",
        "--forwarded-allow-ips", '${join(",", aws_subnet.public[*].cidr_block)}',
    ],
    "worker": ["python", "-m", "worker"],
    "migrate": ["picforge", "migrate"],
    "keys": ["picforge", "keys", "list"],
}  # fmt: skip
# The code's defaults (worker/config.py), which the infrastructure must respect even if a
# deployment left the variable unset.
CODE_DRAIN_S_DEFAULT = 30
CODE_JOB_TIMEOUT_S_DEFAULT = 120
FARGATE_MAX_STOP_TIMEOUT_S = 120


def _container(tf: Module, process: str) -> dict[str, Any]:
    container = tf.locals[f"{process}_container"]
    assert isinstance(container, dict)
    return container


def _environment(tf: Module, process: str) -> dict[str, Any]:
    """The env vars of a container: the maps its `environment` expression merges."""
    expression = _container(tf, process)["environment"]
    sources = re.findall(r"local\.(\w+_environment)", expression)
    assert sources, f"{process}: environment must be built from local.*_environment maps"
    assert "if value != null" in expression, f"{process}: null settings must be left out"
    merged: dict[str, Any] = {}
    for source in sources:
        merged.update(tf.resolve(tf.locals[source]))
    return merged


def _secrets(tf: Module, process: str) -> dict[str, str]:
    secrets = tf.resolve(_container(tf, process).get("secrets", []))
    return {item["name"]: item["valueFrom"] for item in secrets}


def test_task_definitions_run_the_containers_defined_in_locals(tf: Module) -> None:
    for process in COMMANDS:
        definition = tf.resource("aws_ecs_task_definition", process)
        assert (
            definition["container_definitions"] == f"${{jsonencode([local.{process}_container])}}"
        )
        assert definition["requires_compatibilities"] == ["FARGATE"]
        assert definition["network_mode"] == "awsvpc"


@pytest.mark.parametrize("process", sorted(COMMANDS))
def test_container_runs_the_contract_command(tf: Module, process: str) -> None:
    assert tf.resolve(_container(tf, process)["command"]) == COMMANDS[process]


def test_api_container_listens_on_8000_and_worker_exposes_metrics_on_9100(tf: Module) -> None:
    assert tf.resolve(_container(tf, "api")["portMappings"]) == [
        {"containerPort": 8000, "protocol": "tcp"}
    ]
    assert tf.resolve(_container(tf, "worker")["portMappings"]) == [
        {"containerPort": 9100, "protocol": "tcp"}
    ]
    assert _environment(tf, "worker")["PICFORGE_WORKER_METRICS_PORT"] == "9100"


@pytest.mark.parametrize("process", sorted(COMMANDS))
def test_container_environment_and_secrets_cover_every_required_setting(
    tf: Module, process: str
) -> None:
    provided = set(_environment(tf, process)) | set(_secrets(tf, process))
    missing = required_settings(SETTINGS[process]) - provided
    assert not missing, f"{process} lacks {sorted(missing)}"


@pytest.mark.parametrize("process", ["api", "worker"])
def test_container_sets_only_settings_the_process_reads(tf: Module, process: str) -> None:
    """A misspelt variable would be ignored silently by the code: none may reach a task."""
    known = {variable(name) for name in SETTINGS[process].model_fields}
    provided = set(_environment(tf, process)) | set(_secrets(tf, process))
    unknown = {name for name in provided if name.startswith("PICFORGE_")} - known
    assert not unknown, f"{process} sets {sorted(unknown)}, which the code never reads"


@pytest.mark.parametrize("process", OWNER_TASKS)
def test_owner_tasks_get_database_credentials_only_from_the_rds_secret(
    tf: Module, process: str
) -> None:
    secrets = _secrets(tf, process)
    environment = _environment(tf, process)
    for setting, key in SECRET_SETTINGS.items():
        assert setting not in environment, f"{process}: {setting} must not be plain env"
        assert (
            secrets[setting]
            == f"${{aws_db_instance.this.master_user_secret[0].secret_arn}}:{key}::"
        )
    assert "PICFORGE_DB_AUTH" not in environment  # the password, as injected


@pytest.mark.parametrize("process", ["api", "worker"])
def test_app_tasks_log_in_as_the_app_role_with_iam_and_never_see_the_master_secret(
    tf: Module, process: str
) -> None:
    environment = _environment(tf, process)
    assert {name: environment[name] for name in APP_LOGIN} == APP_LOGIN
    assert _secrets(tf, process) == {}
    assert tf.locals["app_db_user"] == APP_LOGIN["PICFORGE_DB_USER"]
    assert tf.resource("aws_db_instance", "this")["iam_database_authentication_enabled"] is True


def test_containers_verify_the_database_certificate_and_never_name_an_emulator(
    tf: Module,
) -> None:
    dockerfile = (INFRA_DIR.parent / "Dockerfile").read_text()
    assert f"global-bundle.pem {RDS_CA_BUNDLE}" in dockerfile
    # RDS Proxy's ACM certificate chains to Amazon's public roots, in the system bundle.
    assert f"test -s {SYSTEM_CA_BUNDLE}" in dockerfile
    for process in COMMANDS:
        environment = _environment(tf, process)
        assert environment["PICFORGE_DB_SSLMODE"] == "verify-full"
        expected = RDS_CA_BUNDLE if process in OWNER_TASKS else APP_CA_BUNDLE
        assert environment["PICFORGE_DB_SSLROOTCERT"] == expected, process
        assert "PICFORGE_AWS_ENDPOINT_URL" not in environment
        assert "PICFORGE_DATABASE_URL" not in environment, "use the parts"
    assert tf.locals["public_ca_bundle"] == SYSTEM_CA_BUNDLE


@pytest.mark.parametrize("process", sorted(COMMANDS))
def test_containers_connect_to_the_proxy_only_as_the_app_role(tf: Module, process: str) -> None:
    """The app role's tasks log in wherever local.app_db_host says (the proxy when there is
    one); the master user's tasks always to the instance itself."""
    environment = _environment(tf, process)
    if process in OWNER_TASKS:
        assert environment["PICFORGE_DB_HOST"] == "${aws_db_instance.this.address}"
    else:
        assert environment["PICFORGE_DB_HOST"] == (
            "${local.db_proxy_enabled ? aws_db_proxy.this[0].endpoint : "
            "aws_db_instance.this.address}"
        )


def test_api_public_base_url_is_the_cdn_when_enabled(tf: Module) -> None:
    environment = _environment(tf, "api")
    # Null (so left out, and the API pre-signs GETs) without the CDN.
    assert environment["PICFORGE_PUBLIC_BASE_URL"] == (
        '${var.enable_cdn ? "https://${aws_cloudfront_distribution.this[0].domain_name}" : null}'
    )
    assert environment["PICFORGE_PRESIGN_EXPIRES_S"] == "300"
    assert environment["PICFORGE_MAX_UPLOAD_BYTES"] == "52428800"


def test_worker_stop_timeout_outlasts_its_drain(tf: Module) -> None:
    stop_timeout = tf.resolve(_container(tf, "worker")["stopTimeout"])
    drain_s = float(_environment(tf, "worker")["PICFORGE_WORKER_DRAIN_S"])
    assert stop_timeout > drain_s
    assert stop_timeout > CODE_DRAIN_S_DEFAULT
    assert stop_timeout <= FARGATE_MAX_STOP_TIMEOUT_S


def test_queue_visibility_timeout_outlasts_one_job(tf: Module) -> None:
    visibility = tf.resolve(tf.resource("aws_sqs_queue", "images")["visibility_timeout_seconds"])
    job_timeout = int(_environment(tf, "worker")["PICFORGE_WORKER_JOB_TIMEOUT_S"])
    assert visibility > job_timeout
    assert visibility > CODE_JOB_TIMEOUT_S_DEFAULT


def test_queue_dead_letters_after_a_few_receives(tf: Module) -> None:
    redrive = tf.resource("aws_sqs_queue", "images")["redrive_policy"]
    assert "deadLetterTargetArn = aws_sqs_queue.dead_letter.arn" in redrive
    receives = re.search(r"maxReceiveCount = (\d+)", redrive)
    assert receives and 1 < int(receives.group(1)) <= 10
    allow = tf.resource("aws_sqs_queue_redrive_allow_policy", "dead_letter")
    assert re.search(
        r"sourceQueueArns\s*=\s*\[aws_sqs_queue\.images\.arn\]", allow["redrive_allow_policy"]
    )


def test_uploads_notify_the_queue_of_new_originals_only(tf: Module) -> None:
    notification = tf.resource("aws_s3_bucket_notification", "uploads")
    assert notification["bucket"] == "${aws_s3_bucket.uploads.id}"
    (queue,) = notification["queue"]
    assert queue["queue_arn"] == "${aws_sqs_queue.images.arn}"
    assert queue["events"] == ["s3:ObjectCreated:*"]
    assert tf.resolve(queue["filter_prefix"]) == ORIGINALS_PREFIX
    assert "${aws_sqs_queue_policy.images}" in notification["depends_on"]


def test_key_prefixes_match_the_code(tf: Module) -> None:
    assert tf.locals["originals_prefix"] == ORIGINALS_PREFIX
    assert tf.locals["renditions_prefix"] == RENDITIONS_PREFIX


def test_queue_accepts_messages_only_from_the_uploads_bucket_of_this_account(tf: Module) -> None:
    policy = tf.resource("aws_sqs_queue_policy", "images")
    assert policy["policy"] == "${data.aws_iam_policy_document.images_queue.json}"
    statements = tf.data_source("aws_iam_policy_document", "images_queue")["statement"]
    allows = [s for s in statements if s.get("effect", "Allow") == "Allow"]
    assert len(allows) == 1
    (allow,) = allows
    assert allow["actions"] == ["sqs:SendMessage"]
    assert allow["principals"] == [{"type": "Service", "identifiers": ["s3.amazonaws.com"]}]
    conditions = {(c["test"], c["variable"]): c["values"] for c in allow["condition"]}
    assert conditions[("ArnEquals", "aws:SourceArn")] == ["${aws_s3_bucket.uploads.arn}"]
    assert conditions[("StringEquals", "aws:SourceAccount")] == ["${local.account_id}"]


@pytest.mark.parametrize(("service", "subnets"), [("api", "api"), ("worker", "private")])
def test_services_run_in_private_subnets_without_public_ips(
    tf: Module, service: str, subnets: str
) -> None:
    resource = tf.resource("aws_ecs_service", service)
    (network,) = resource["network_configuration"]
    assert network["subnets"] == f"${{aws_subnet.{subnets}[*].id}}"
    assert network["assign_public_ip"] is False
    assert network["security_groups"] == [f"${{aws_security_group.{service}.id}}"]
    assert resource["launch_type"] == "FARGATE"
    (breaker,) = resource["deployment_circuit_breaker"]
    assert breaker == {"enable": True, "rollback": True}


def test_alb_is_internet_facing_in_the_public_subnets(tf: Module) -> None:
    alb = tf.resource("aws_lb", "this")
    assert alb["internal"] is False
    assert alb["subnets"] == "${aws_subnet.public[*].id}"
    for subnet in ("public", "private", "api"):
        assert tf.resource("aws_subnet", subnet).get("map_public_ip_on_launch", False) is False


def test_alb_serves_https_redirects_http_and_checks_readiness(tf: Module) -> None:
    https = tf.resource("aws_lb_listener", "https")
    assert https["protocol"] == "HTTPS" and https["port"] == 443
    assert https["certificate_arn"] == "${var.certificate_arn}"
    redirect = tf.resource("aws_lb_listener", "http")["default_action"][0]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"][0]["protocol"] == "HTTPS"
    assert redirect["redirect"][0]["status_code"] == "HTTP_301"
    target_group = tf.resource("aws_lb_target_group", "this")
    assert target_group["health_check"][0]["path"] == "/readyz"
    assert tf.resolve(target_group["port"]) == 8000
    assert target_group["target_type"] == "ip"


def test_cluster_has_container_insights(tf: Module) -> None:
    (setting,) = tf.resource("aws_ecs_cluster", "this")["setting"]
    assert setting == {"name": "containerInsights", "value": "enabled"}


def test_worker_scales_on_backlog_down_to_zero_when_asked(tf: Module) -> None:
    target = tf.resource("aws_appautoscaling_target", "worker")
    assert target["min_capacity"] == "${var.worker_min_count}"
    assert tf.variables["worker_min_count"]["default"] == 0
    backlog = tf.resource("aws_cloudwatch_metric_alarm", "worker_backlog")
    assert backlog["alarm_actions"] == ["${aws_appautoscaling_policy.worker_backlog.arn}"]
    assert tf.locals["backlog_queries"] == {
        "visible": "ApproximateNumberOfMessagesVisible",
        "inflight": "ApproximateNumberOfMessagesNotVisible",
    }
    idle = tf.resource("aws_cloudwatch_metric_alarm", "worker_idle")
    assert idle["treat_missing_data"] == "breaching", "an idle queue stops publishing metrics"
    (idle_step,) = tf.resource("aws_appautoscaling_policy", "worker_idle")[
        "step_scaling_policy_configuration"
    ][0]["step_adjustment"]
    assert idle_step["scaling_adjustment"] == "${var.worker_min_count}"


def test_api_scales_on_cpu_and_requests(tf: Module) -> None:
    metrics = {
        policy["target_tracking_scaling_policy_configuration"][0][
            "predefined_metric_specification"
        ][0]["predefined_metric_type"]
        for name, policy in tf.resources["aws_appautoscaling_policy"].items()
        if name.startswith("api_")
    }
    assert metrics == {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"}


def test_alarms_watch_the_dead_letter_queue_and_the_oldest_message(tf: Module) -> None:
    dlq = tf.resource("aws_cloudwatch_metric_alarm", "dlq_depth")
    assert dlq["dimensions"] == {"QueueName": "${aws_sqs_queue.dead_letter.name}"}
    assert dlq["metric_name"] == "ApproximateNumberOfMessagesVisible"
    age = tf.resource("aws_cloudwatch_metric_alarm", "queue_oldest_message")
    assert age["metric_name"] == "ApproximateAgeOfOldestMessage"
    for alarm in (dlq, age):
        assert alarm["alarm_actions"] == ["${aws_sns_topic.this.arn}"]
