output "alb_dns_name" {
  description = "DNS name of the load balancer: point the API's hostname at it (CNAME, or Route 53 alias with alb_zone_id)."
  value       = aws_lb.this.dns_name
}

output "alb_zone_id" {
  description = "Hosted zone ID of the load balancer, for a Route 53 alias record."
  value       = aws_lb.this.zone_id
}

output "ecr_repository_url" {
  description = "ECR repository to push the picforge image to (tag it with image_tag)."
  value       = aws_ecr_repository.this.repository_url
}

output "cluster_name" {
  description = "ECS cluster running the api and worker services."
  value       = aws_ecs_cluster.this.name
}

output "api_service_name" {
  description = "ECS service name of the API."
  value       = aws_ecs_service.api.name
}

output "worker_service_name" {
  description = "ECS service name of the worker."
  value       = aws_ecs_service.worker.name
}

output "migrate_task_definition_arn" {
  description = "Task definition (family:revision) of the one-off migration task for this image_tag."
  value       = aws_ecs_task_definition.migrate.arn
}

output "private_subnet_ids" {
  description = "Private subnets the worker (and a migrate or keys run) use; the API tasks have subnets of their own."
  value       = aws_subnet.private[*].id
}

output "migrate_security_group_id" {
  description = "Security group to run the migration task with (the API's: allowed to reach the database)."
  value       = aws_security_group.api.id
}

output "migrate_command" {
  description = "The exact `aws ecs run-task` command that runs the migrations for this deployment."
  value = join(" ", [
    "aws ecs run-task",
    "--region ${var.aws_region}",
    "--cluster ${aws_ecs_cluster.this.name}",
    "--task-definition ${aws_ecs_task_definition.migrate.arn}",
    "--launch-type FARGATE",
    "--network-configuration 'awsvpcConfiguration={subnets=[${join(",", aws_subnet.private[*].id)}],securityGroups=[${aws_security_group.api.id}],assignPublicIp=DISABLED}'",
  ])
}

output "keys_command" {
  description = "The `aws ecs run-task` command of the keys task, without its --overrides: add one naming the `picforge keys` command to run (README.md, \"API keys\")."
  value = join(" ", [
    "aws ecs run-task",
    "--region ${var.aws_region}",
    "--cluster ${aws_ecs_cluster.this.name}",
    "--task-definition ${aws_ecs_task_definition.keys.arn}",
    "--launch-type FARGATE",
    "--network-configuration 'awsvpcConfiguration={subnets=[${join(",", aws_subnet.private[*].id)}],securityGroups=[${aws_security_group.api.id}],assignPublicIp=DISABLED}'",
  ])
}

output "keys_secret_prefix" {
  description = "Name prefix of the secrets the keys task may create: a new key's secret must be named under it."
  value       = local.keys_secret_prefix
}

output "app_db_user" {
  description = "The PostgreSQL role the api and worker log in as, with IAM authentication (created by the migrations)."
  value       = local.app_db_user
}

output "uploads_bucket" {
  description = "Bucket receiving original uploads (under originals/)."
  value       = aws_s3_bucket.uploads.id
}

output "renditions_bucket" {
  description = "Bucket holding renditions (under renditions/)."
  value       = aws_s3_bucket.renditions.id
}

output "queue_url" {
  description = "SQS queue of new-original events consumed by the worker."
  value       = aws_sqs_queue.images.url
}

output "dead_letter_queue_url" {
  description = "Dead-letter queue: events that failed five deliveries."
  value       = aws_sqs_queue.dead_letter.url
}

output "db_endpoint" {
  description = "PostgreSQL endpoint (host:port), reachable only from the task security groups."
  value       = aws_db_instance.this.endpoint
}

output "db_proxy_endpoint" {
  description = "RDS Proxy endpoint the api and worker connect to, or null when they connect to the instance (database_proxy)."
  value       = local.db_proxy_enabled ? aws_db_proxy.this[0].endpoint : null
}

output "db_secret_arn" {
  description = "Secrets Manager secret (managed by RDS) holding the master user's name and password: for the migrate and keys tasks only."
  value       = local.db_secret_arn
}

output "public_base_url" {
  description = "CloudFront URL serving renditions (PICFORGE_PUBLIC_BASE_URL), or null when enable_cdn is false."
  value       = local.public_base_url
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms publish to; subscribe pagers or chat here."
  value       = aws_sns_topic.this.arn
}
