# PostgreSQL for image records. Private, encrypted, TLS-only, master password managed by RDS
# in Secrets Manager (never in variables or state).

resource "aws_db_subnet_group" "this" {
  name       = local.name
  subnet_ids = aws_subnet.private[*].id
}

resource "aws_db_parameter_group" "this" {
  name   = "${local.name}-postgres17"
  family = "postgres17"

  # NOTE: refuse unencrypted connections; the tasks connect with PICFORGE_DB_SSLMODE=verify-full.
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  # NOTE: schema changes and slow statements (> 1 s) only: full statement logging would
  # write every image row (and its metadata) into the logs.
  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_db_instance" "this" {
  identifier     = local.name
  engine         = "postgres"
  engine_version = "17"
  instance_class = var.db_instance_class

  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true

  db_name  = local.db_name
  username = "picforge"
  # NOTE: RDS generates the password, stores it in Secrets Manager and rotates it; ECS injects
  # it into the one-off migrate and keys tasks only (containers.tf).
  manage_master_user_password = true
  # NOTE: the api and worker log in as picforge_app with IAM tokens (database_access.tf).
  iam_database_authentication_enabled = true

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.db.id]
  parameter_group_name   = aws_db_parameter_group.this.name
  port                   = local.db_port
  publicly_accessible    = false
  multi_az               = var.db_multi_az
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  backup_retention_period   = 7
  backup_window             = "03:00-04:00"
  maintenance_window        = "sun:04:30-sun:05:30"
  copy_tags_to_snapshot     = true
  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${local.name}-final"

  auto_minor_version_upgrade = true
  # NOTE: parameter and class changes wait for the maintenance window unless applied by hand.
  apply_immediately = false

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.this.arn
  performance_insights_retention_period = 7
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]

  depends_on = [aws_cloudwatch_log_group.rds]

  lifecycle {
    # NOTE: "intermittent connection errors under load" must not be the first incident: every
    # api and worker task at its autoscaling maximum, each pool full, must fit under
    # max_connections with room to spare (database_access.tf), or go through RDS Proxy.
    precondition {
      condition     = local.db_max_connections > 0
      error_message = "Unknown db_instance_class for the connection budget: add it to local.db_max_connections_by_class or set db_max_connections."
    }
    # NOTE: with RDS Proxy in front (database_proxy.tf) the proxy bounds what reaches the
    # instance, so only a deployment without one must fit.
    precondition {
      condition     = local.db_budget_fits || local.db_proxy_enabled
      error_message = "At their autoscaling maximums the api and worker tasks could open more connections than the database allows (plus reserve), and database_proxy is \"never\": lower api_max_count, worker_max_count or the pool sizes, pick a larger db_instance_class, or set database_proxy to \"auto\" or \"always\" (RDS Proxy in front)."
    }
  }
}

locals {
  db_secret_arn = aws_db_instance.this.master_user_secret[0].secret_arn
}
