# One image, two long-running services (api behind the ALB, worker on the queue) and a one-off
# migration task definition, all on Fargate in private subnets (the API in its own: network.tf).

resource "aws_ecs_cluster" "this" {
  name = local.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_ecs_task_definition" "api" {
  family                   = "${local.name}-api"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.api_cpu
  memory                   = var.api_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.api_task.arn
  container_definitions    = jsonencode([local.api_container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }
}

locals {
  # One render process per vCPU (the code's default is the host's count, not the task's).
  worker_render_processes = max(1, floor(var.worker_cpu / 1024))
  # The worker process, its render processes' fork server, and the originals in flight: the
  # worker with its children measured 254-286 MiB RSS in the soak (bench/README.md).
  worker_process_memory_mb = 512
  # Each render process is capped (RLIMIT_AS) at worker_render_memory_mb: together they must
  # fit in the task, or the task, not one render, is what runs out of memory.
  worker_memory_fits = (
    local.worker_render_processes * var.worker_render_memory_mb + local.worker_process_memory_mb
    <= var.worker_memory
  )
}

resource "aws_ecs_task_definition" "worker" {
  family                   = "${local.name}-worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.worker_cpu
  memory                   = var.worker_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.worker_task.arn
  container_definitions    = jsonencode([local.worker_container])

  lifecycle {
    precondition {
      condition     = local.worker_memory_fits
      error_message = "A worker task's render processes (one per vCPU) at worker_render_memory_mb each, plus the worker process itself (local.worker_process_memory_mb), need more than worker_memory: raise worker_memory or lower worker_render_memory_mb."
    }
  }

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }
}

# NOTE: run by hand (README.md, "Run the migrations") with the api security group, which is
# the one allowed to reach the database besides the worker's.
resource "aws_ecs_task_definition" "migrate" {
  family                   = "${local.name}-migrate"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.execution.arn
  container_definitions    = jsonencode([local.migrate_container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }
}

# NOTE: run by hand (README.md, "API keys"), like migrate, with the api security group. It logs
# in as the owner and may create secrets under keys_secret_prefix only (database_access.tf).
resource "aws_ecs_task_definition" "keys" {
  family                   = "${local.name}-keys"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.keys_task.arn
  container_definitions    = jsonencode([local.keys_container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }
}

resource "aws_ecs_service" "api" {
  name                    = "api"
  cluster                 = aws_ecs_cluster.this.id
  task_definition         = aws_ecs_task_definition.api.arn
  desired_count           = var.api_min_count
  launch_type             = "FARGATE"
  platform_version        = "LATEST"
  propagate_tags          = "SERVICE"
  enable_ecs_managed_tags = true
  # NOTE: time for the app to open its pool before /readyz failures count against the task.
  health_check_grace_period_seconds = 60

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # NOTE: the API's own subnets: with the CDN, their route to the NAT gateway carries DELETE's
  # CloudFront invalidations (network.tf).
  network_configuration {
    subnets          = aws_subnet.api[*].id
    security_groups  = [aws_security_group.api.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = "api"
    container_port   = local.api_port
  }

  lifecycle {
    # NOTE: autoscaling owns the task count after creation.
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.https]
}

resource "aws_ecs_service" "worker" {
  name                    = "worker"
  cluster                 = aws_ecs_cluster.this.id
  task_definition         = aws_ecs_task_definition.worker.arn
  desired_count           = var.worker_min_count
  launch_type             = "FARGATE"
  platform_version        = "LATEST"
  propagate_tags          = "SERVICE"
  enable_ecs_managed_tags = true

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.worker.id]
    assign_public_ip = false
  }

  lifecycle {
    ignore_changes = [desired_count]
  }
}
