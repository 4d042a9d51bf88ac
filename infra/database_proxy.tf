# RDS Proxy in front of PostgreSQL for the api and worker, when their connections at full scale
# would not fit the instance's max_connections (database_access.tf), or when the operator asks
# (var.database_proxy). The proxy holds the api and worker connections and lends database
# connections per transaction, up to a share of max_connections that leaves the reserve free.
#
# NOTE: end-to-end IAM authentication (default_auth_scheme = "IAM_AUTH"): the tasks log in to
# the proxy with IAM tokens as picforge_app, exactly as they do to the instance without one, and
# the proxy logs in to the instance with IAM tokens of its own role. No password exists for
# picforge_app, so the proxy needs no Secrets Manager secret: its role may only connect as that
# user. (A secret-based proxy would need a password for picforge_app, to rotate and to leak, or
# would log the app in as the master user.)
#
# The migrate and keys tasks keep logging in to the instance directly, as the master user with
# the RDS-managed secret: DDL and the owner's work stay off the proxy, inside the reserve.

locals {
  db_budget_fits   = local.db_connections_at_max + local.db_reserved_connections <= local.db_max_connections
  db_proxy_enabled = var.database_proxy == "always" || (var.database_proxy == "auto" && !local.db_budget_fits)

  # NOTE: the proxy may open this share of max_connections, so that what it takes at full load
  # leaves db_reserved_connections to the master user's tasks and operators (1-100, AWS's range).
  db_proxy_max_connections_percent = local.db_max_connections > 0 ? max(1, floor(100 * (local.db_max_connections - local.db_reserved_connections) / local.db_max_connections)) : 100

  # NOTE: IAM policies name a proxy by its resource id (prx-...), the last part of its ARN.
  db_proxy_resource_id = local.db_proxy_enabled ? element(split(":", aws_db_proxy.this[0].arn), 6) : null
}

resource "aws_db_proxy" "this" {
  count = local.db_proxy_enabled ? 1 : 0

  name                = local.name
  engine_family       = "POSTGRESQL"
  default_auth_scheme = "IAM_AUTH"
  # NOTE: the proxy refuses plain connections; the tasks connect with verify-full (containers.tf).
  require_tls            = true
  role_arn               = aws_iam_role.db_proxy[0].arn
  vpc_subnet_ids         = aws_subnet.private[*].id
  vpc_security_group_ids = [aws_security_group.db_proxy[0].id]
  # NOTE: the pools keep their connections open for as long as the task runs; the proxy closes
  # one idle this long, AWS's maximum (8 h), so a quiet night does not cost the morning a 503.
  idle_client_timeout = 28800
  # NOTE: debug logging writes statements (image rows, metadata) into the logs.
  debug_logging = false
}

resource "aws_db_proxy_default_target_group" "this" {
  count = local.db_proxy_enabled ? 1 : 0

  db_proxy_name = aws_db_proxy.this[0].name

  connection_pool_config {
    max_connections_percent      = local.db_proxy_max_connections_percent
    max_idle_connections_percent = min(50, local.db_proxy_max_connections_percent)
    # NOTE: a transaction waits at most this long for a database connection, like a refused
    # connect (service/database_login.py, CONNECT_TIMEOUT_S), rather than AWS's 120 s.
    connection_borrow_timeout = 10
  }
}

resource "aws_db_proxy_target" "this" {
  count = local.db_proxy_enabled ? 1 : 0

  db_proxy_name          = aws_db_proxy.this[0].name
  target_group_name      = aws_db_proxy_default_target_group.this[0].name
  db_instance_identifier = aws_db_instance.this.identifier
}

# --- IAM: what the proxy itself may do ---------------------------------------------------------

data "aws_iam_policy_document" "db_proxy_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["rds.amazonaws.com"]
    }
    # NOTE: confused-deputy guard: only RDS acting for this account's proxies.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:rds:${var.aws_region}:${local.account_id}:db-proxy:*"]
    }
  }
}

resource "aws_iam_role" "db_proxy" {
  count = local.db_proxy_enabled ? 1 : 0

  name               = "${local.name}-db-proxy"
  assume_role_policy = data.aws_iam_policy_document.db_proxy_assume.json
}

# NOTE: connect to the instance as the app role, nothing else: no secret to read (so no
# secretsmanager or kms grant at all), no other user, no other database.
data "aws_iam_policy_document" "db_proxy" {
  statement {
    sid       = "ConnectToTheInstanceAsTheAppRole"
    actions   = ["rds-db:connect"]
    resources = [local.app_db_user_arn]
  }
}

resource "aws_iam_role_policy" "db_proxy" {
  count = local.db_proxy_enabled ? 1 : 0

  name   = "db-proxy"
  role   = aws_iam_role.db_proxy[0].id
  policy = data.aws_iam_policy_document.db_proxy.json
}
