# Production: two AZs throughout, Multi-AZ database, CDN in front of renditions.
environment        = "prod"
aws_region         = "eu-west-1"
availability_zones = ["eu-west-1a", "eu-west-1b"]
certificate_arn    = "arn:aws:acm:eu-west-1:111111111111:certificate/00000000-0000-0000-0000-000000000000"
image_tag          = "replace-with-git-sha"

cors_allowed_origins = ["https://picforge.example.com"]
enable_cdn           = true
# NOTE: one NAT gateway per AZ: DELETE (its CloudFront invalidation) survives losing a zone.
nat_gateway_per_az = true
alarm_email        = "ops@example.com"

api_cpu       = 512
api_memory    = 1024
api_min_count = 2
api_max_count = 6

worker_cpu              = 1024
worker_memory           = 2048
worker_concurrency      = 2
worker_min_count        = 1
worker_max_count        = 10
worker_backlog_per_task = 20

db_instance_class        = "db.m7g.large"
db_allocated_storage     = 50
db_max_allocated_storage = 500
db_multi_az              = true

log_retention_days  = 365
deletion_protection = true
