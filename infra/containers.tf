# Container definitions: the contract between this module and the code (service/config.py,
# worker/config.py). Every PICFORGE_* setting is set here; tests/infra checks the lists.

locals {
  image = "${aws_ecr_repository.this.repository_url}:${var.image_tag}"

  public_base_url = var.enable_cdn ? "https://${aws_cloudfront_distribution.this[0].domain_name}" : null

  # NOTE: PICFORGE_AWS_ENDPOINT_URL is never set on AWS: the SDK finds the regional endpoints
  # (resolved to the VPC endpoints by private DNS) and the credentials of the task role.
  shared_environment = {
    PICFORGE_AWS_REGION        = var.aws_region
    PICFORGE_UPLOADS_BUCKET    = aws_s3_bucket.uploads.id
    PICFORGE_RENDITIONS_BUCKET = aws_s3_bucket.renditions.id
    PICFORGE_DB_PORT           = tostring(local.db_port)
    PICFORGE_DB_NAME           = local.db_name
    # NOTE: rds.force_ssl (and the proxy's require_tls) refuse plain connections; verify-full
    # also checks the certificate against the CA bundle below and the host name.
    PICFORGE_DB_SSLMODE = "verify-full"
  }

  # NOTE: RDS's CA bundle, baked into the image by the Dockerfile, signs the instance's
  # certificate. RDS Proxy presents an ACM certificate instead, which chains to Amazon's public
  # roots (Amazon Root CA 1-4): those are in the image's system bundle (Debian ca-certificates).
  rds_ca_bundle    = "/etc/ssl/certs/rds-global-bundle.pem"
  public_ca_bundle = "/etc/ssl/certs/ca-certificates.crt"

  # NOTE: the master user's tasks (migrate, keys) always log in to the instance itself.
  owner_database_environment = {
    PICFORGE_DB_HOST        = aws_db_instance.this.address
    PICFORGE_DB_SSLROOTCERT = local.rds_ca_bundle
  }

  # NOTE: the long-running tasks log in as the app role with IAM tokens (database_access.tf),
  # so no password reaches them and a rotation has nothing to break; through RDS Proxy when
  # there is one (database_proxy.tf), else to the instance.
  app_database_environment = {
    PICFORGE_DB_AUTH        = "iam"
    PICFORGE_DB_USER        = local.app_db_user
    PICFORGE_DB_HOST        = local.app_db_host
    PICFORGE_DB_SSLROOTCERT = local.db_proxy_enabled ? local.public_ca_bundle : local.rds_ca_bundle
  }

  # NOTE: the worker reads the ticket lifetime too: an image still awaiting its upload that
  # long (plus PICFORGE_UPLOAD_GRACE_S) after its creation is `expired` and swept.
  presign_expires_s = "300"

  api_environment = {
    PICFORGE_DB_POOL_SIZE      = tostring(local.api_db_pool_size)
    PICFORGE_PRESIGN_EXPIRES_S = local.presign_expires_s
    PICFORGE_MAX_UPLOAD_BYTES  = "52428800"
    # NOTE: null (and so left out) without the CDN: the API then pre-signs rendition GETs.
    PICFORGE_PUBLIC_BASE_URL = local.public_base_url
    # NOTE: DELETE invalidates the image's renditions at the CDN (README.md, "Deleting").
    PICFORGE_CDN_DISTRIBUTION_ID = var.enable_cdn ? aws_cloudfront_distribution.this[0].id : null
    # NOTE: "reprocess" sends to the queue; the API needs its URL as much as the worker does.
    PICFORGE_QUEUE_URL = aws_sqs_queue.images.url
  }

  # NOTE: PICFORGE_WORKER_RENDER_PROCESSES defaults to os.cpu_count() in the code, which on
  # Fargate is the host's count, not the task's vCPUs: pin it to what the task has.
  worker_environment = {
    PICFORGE_PRESIGN_EXPIRES_S       = local.presign_expires_s
    PICFORGE_DB_POOL_SIZE            = tostring(local.worker_db_pool_size)
    PICFORGE_QUEUE_URL               = aws_sqs_queue.images.url
    PICFORGE_WORKER_CONCURRENCY      = tostring(var.worker_concurrency)
    PICFORGE_WORKER_RENDER_PROCESSES = tostring(local.worker_render_processes)
    PICFORGE_RENDER_MEMORY_MB        = tostring(var.worker_render_memory_mb)
    PICFORGE_WORKER_DRAIN_S          = tostring(local.worker_drain_s)
    PICFORGE_WORKER_JOB_TIMEOUT_S    = tostring(local.worker_job_timeout_s)
    PICFORGE_WORKER_METRICS_PORT     = tostring(local.worker_metrics_port)
  }

  # NOTE: the master user's credentials, for the one-off migrate and keys tasks only: ECS reads
  # the RDS-managed secret at task start, and a rotation meanwhile fails at most that run.
  db_secrets = [
    { name = "PICFORGE_DB_USER", valueFrom = "${local.db_secret_arn}:username::" },
    { name = "PICFORGE_DB_PASSWORD", valueFrom = "${local.db_secret_arn}:password::" },
  ]

  # NOTE: read-only root filesystem; /tmp is a task-local scratch volume (Pillow, uploads of
  # temp files) that lives and dies with the task.
  tmp_mount = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]

  api_container = {
    name      = "api"
    image     = local.image
    essential = true
    # NOTE: X-Forwarded-For/-Proto are trusted only from the ALB's subnets (nothing else can
    # reach the port: security_groups.tf), so request.url, and every redirect, says https.
    command                = ["picforge", "serve", "--host", "0.0.0.0", "--port", tostring(local.api_port), "--forwarded-allow-ips", join(",", aws_subnet.public[*].cidr_block)]
    portMappings           = [{ containerPort = local.api_port, protocol = "tcp" }]
    environment            = [for name, value in merge(local.shared_environment, local.app_database_environment, local.api_environment) : { name = name, value = value } if value != null]
    readonlyRootFilesystem = true
    mountPoints            = local.tmp_mount
    # NOTE: liveness only (/healthz); readiness (/readyz, DB + S3) is the ALB's health check,
    # so a database blip drains traffic instead of restarting every task.
    healthCheck = {
      command     = ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${local.api_port}/healthz', timeout=3)"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.ecs["api"].name
        awslogs-region        = var.aws_region
        awslogs-stream-prefix = "api"
      }
    }
  }

  worker_container = {
    name         = "worker"
    image        = local.image
    essential    = true
    command      = ["python", "-m", "worker"]
    portMappings = [{ containerPort = local.worker_metrics_port, protocol = "tcp" }]
    environment  = [for name, value in merge(local.shared_environment, local.app_database_environment, local.worker_environment) : { name = name, value = value } if value != null]
    # NOTE: SIGTERM starts the drain (PICFORGE_WORKER_DRAIN_S); SIGKILL follows stopTimeout.
    stopTimeout            = local.worker_stop_timeout_s
    readonlyRootFilesystem = true
    mountPoints            = local.tmp_mount
    healthCheck = {
      command     = ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${local.worker_metrics_port}/metrics', timeout=3)"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.ecs["worker"].name
        awslogs-region        = var.aws_region
        awslogs-stream-prefix = "worker"
      }
    }
  }

  # NOTE: the migration needs the database only; it gets the shared settings so that the same
  # Settings classes validate, and no task role (it calls no AWS API).
  migrate_container = {
    name                   = "migrate"
    image                  = local.image
    essential              = true
    command                = ["picforge", "migrate"]
    environment            = [for name, value in merge(local.shared_environment, local.owner_database_environment) : { name = name, value = value } if value != null]
    secrets                = local.db_secrets
    readonlyRootFilesystem = true
    mountPoints            = local.tmp_mount
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.ecs["migrate"].name
        awslogs-region        = var.aws_region
        awslogs-stream-prefix = "migrate"
      }
    }
  }

  # NOTE: `picforge keys ...`, run by hand with a command override (outputs.tf, keys_command):
  # it writes a new key into a new secret under keys_secret_prefix and prints only the ARN
  # (service/key_secrets.py). The default command only lists keys.
  keys_container = {
    name                   = "keys"
    image                  = local.image
    essential              = true
    command                = ["picforge", "keys", "list"]
    environment            = [for name, value in merge(local.shared_environment, local.owner_database_environment) : { name = name, value = value } if value != null]
    secrets                = local.db_secrets
    readonlyRootFilesystem = true
    mountPoints            = local.tmp_mount
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.ecs["keys"].name
        awslogs-region        = var.aws_region
        awslogs-stream-prefix = "keys"
      }
    }
  }
}
