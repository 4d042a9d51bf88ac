# picforge on AWS: one root module for one product. Each concern has its own file:
#   network.tf endpoints.tf security_groups.tf  VPC; AWS APIs via endpoints, NAT for CloudFront
#   alb.tf                                      internet-facing ALB (HTTPS) -> api tasks
#   ecr.tf ecs.tf autoscaling.tf iam.tf         one image, api + worker services, migration task
#   rds.tf s3.tf sqs.tf cloudfront.tf           data, storage, S3 -> SQS events, CDN
#   kms.tf logs.tf alarms.tf                    encryption, log groups, alarms -> SNS

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# NOTE: looks the pinned zones up only to fail the plan if one is missing or not available
# in this region/account, rather than to discover zones (a discovered set can grow).
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = var.availability_zones
  }

  lifecycle {
    postcondition {
      condition     = length(self.names) == length(var.availability_zones)
      error_message = "Every zone in availability_zones must exist and be available in aws_region."
    }
  }
}

locals {
  name       = "${var.name}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  azs        = var.availability_zones

  # NOTE: the S3 key layout is owned by service/storage.py (ORIGINALS_PREFIX,
  # RENDITIONS_PREFIX); tests/infra asserts these stay equal to the code's constants.
  originals_prefix  = "originals/"
  renditions_prefix = "renditions/"

  api_port            = 8000
  worker_metrics_port = 9100
  db_port             = 5432
  db_name             = "picforge"

  # NOTE: the worker contract: a single image may take up to worker_job_timeout_s; on SIGTERM
  # the worker drains in-flight images for up to worker_drain_s, then exits 0. ECS must wait
  # longer than the drain before SIGKILL (Fargate allows at most 120 s), and SQS must keep a
  # received message invisible for longer than one job, or a second worker would redo it.
  worker_job_timeout_s       = 120
  worker_drain_s             = 30
  worker_stop_timeout_s      = 90
  queue_visibility_timeout_s = 180
}
