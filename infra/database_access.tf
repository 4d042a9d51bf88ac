# How the tasks reach PostgreSQL: who logs in as whom, with what, and how many connections the
# whole deployment can open at its autoscaling maximums.
#
# - api and worker log in as `picforge_app` (created and granted by migration 0005: rows only,
#   no DDL, no key minting) with IAM authentication: a fresh 15-minute token per connection,
#   signed with the task role (service/database_login.py). Nothing to rotate, nothing injected.
#   With RDS Proxy (database_proxy.tf) they log in the same way, to the proxy instead.
# - migrate and keys are one-off tasks that log in as the master user (the schema's owner) with
#   the RDS-managed secret, injected by ECS at start: a rotation cannot catch a task mid-run
#   for long, and a rerun gets the new password.

locals {
  app_db_user = "picforge_app"
  # NOTE: IAM auth grants connect per DB user on the instance's resource id, not its name.
  app_db_user_arn = "arn:${local.partition}:rds-db:${var.aws_region}:${local.account_id}:dbuser:${aws_db_instance.this.resource_id}/${local.app_db_user}"
  # NOTE: what the api and worker log in to, and so what their tokens must be good for: the
  # proxy (by its resource id) when there is one, else the instance. Never both.
  app_db_login_resource_id = local.db_proxy_enabled ? local.db_proxy_resource_id : aws_db_instance.this.resource_id
  app_db_login_arn         = "arn:${local.partition}:rds-db:${var.aws_region}:${local.account_id}:dbuser:${local.app_db_login_resource_id}/${local.app_db_user}"
  app_db_host              = local.db_proxy_enabled ? aws_db_proxy.this[0].endpoint : aws_db_instance.this.address

  # NOTE: keys made by the keys task live under this prefix (service/key_secrets.py): the only
  # secrets the task may create, and the only ones the endpoint lets through besides the DB's.
  keys_secret_prefix = "${local.name}/api-keys/"
  keys_secret_arns   = "arn:${local.partition}:secretsmanager:${var.aws_region}:${local.account_id}:secret:${local.keys_secret_prefix}*"

  # --- Connection budget -------------------------------------------------------------------
  # NOTE: RDS for PostgreSQL sets max_connections = LEAST(DBInstanceClassMemory / 9531392, 5000),
  # and DBInstanceClassMemory is the class's memory less what the OS and RDS keep. The figures
  # below take 75 % of the nominal memory, so they are at or under what the instance reports.
  db_max_connections_by_class = {
    "db.t4g.micro"  = 84
    "db.t4g.small"  = 168
    "db.t4g.medium" = 337
    "db.t4g.large"  = 675
    "db.m7g.large"  = 675
    "db.m7g.xlarge" = 1351
    "db.r7g.large"  = 1351
    "db.r7g.xlarge" = 2703
  }
  db_max_connections = coalesce(var.db_max_connections, lookup(local.db_max_connections_by_class, var.db_instance_class, 0))

  # NOTE: one uvicorn process per API task holds the engine's pool and readiness's own
  # connection (service.readiness). A worker task has one engine: an in-flight image holds a
  # connection only while it reads or records, plus the abandoned-image sweep, the expiry sweep
  # or reconcile (worker.sweep, worker.reconciling) and the gate's probe.
  api_db_pool_size    = var.api_db_pool_size
  worker_db_pool_size = var.worker_concurrency + 3

  api_connections_per_task    = local.api_db_pool_size + 1
  worker_connections_per_task = local.worker_db_pool_size
  db_connections_at_max = (
    var.api_max_count * local.api_connections_per_task +
    var.worker_max_count * local.worker_connections_per_task
  )
  # NOTE: kept free for what is not the app: superuser_reserved_connections (3), RDS's own
  # rdsadmin sessions, a migrate and a keys task, and an operator's psql.
  db_reserved_connections = 15
}

# --- IAM: log in as the app role -------------------------------------------------------------

data "aws_iam_policy_document" "app_database_login" {
  statement {
    sid       = "ConnectAsTheAppRole"
    actions   = ["rds-db:connect"]
    resources = [local.app_db_login_arn]
  }
}

resource "aws_iam_role_policy" "api_task_database" {
  name   = "api-task-database"
  role   = aws_iam_role.api_task.id
  policy = data.aws_iam_policy_document.app_database_login.json
}

resource "aws_iam_role_policy" "worker_task_database" {
  name   = "worker-task-database"
  role   = aws_iam_role.worker_task.id
  policy = data.aws_iam_policy_document.app_database_login.json
}

# NOTE: a message whose last delivery failed for want of the database is sent again as a new
# message (worker/database_gate.py), so an outage never dead-letters an image.
data "aws_iam_policy_document" "worker_task_requeue" {
  statement {
    sid       = "RequeueDuringDatabaseOutage"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.images.arn]
  }
}

resource "aws_iam_role_policy" "worker_task_requeue" {
  name   = "worker-task-requeue"
  role   = aws_iam_role.worker_task.id
  policy = data.aws_iam_policy_document.worker_task_requeue.json
}

# --- IAM: the keys task ---------------------------------------------------------------------

resource "aws_iam_role" "keys_task" {
  name               = "${local.name}-keys-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

# NOTE: create (with tags) a new secret under the prefix, and delete it again if the database
# refuses the key. No GetSecretValue: the task never reads a key back.
data "aws_iam_policy_document" "keys_task" {
  statement {
    sid       = "StoreNewKeys"
    actions   = ["secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:DeleteSecret"]
    resources = [local.keys_secret_arns]
  }
}

resource "aws_iam_role_policy" "keys_task" {
  name   = "keys-task"
  role   = aws_iam_role.keys_task.id
  policy = data.aws_iam_policy_document.keys_task.json
}
