# Development: one small instance of everything, scale-to-zero workers, short log retention.
environment        = "dev"
aws_region         = "eu-west-1"
availability_zones = ["eu-west-1a", "eu-west-1b"]
certificate_arn    = "arn:aws:acm:eu-west-1:111111111111:certificate/00000000-0000-0000-0000-000000000000"
image_tag          = "replace-with-git-sha"

cors_allowed_origins = ["https://dev.picforge.example.com", "http://localhost:5173"]
enable_cdn           = false
alarm_email          = null

api_cpu       = 256
api_memory    = 512
api_min_count = 1
api_max_count = 2

worker_cpu         = 512
worker_memory      = 1024
worker_concurrency = 2
# One render process in 1 GiB beside the worker: WebP and AVIF originals are held to fewer
# pixels than in prod (worker/costs.py).
worker_render_memory_mb = 512
worker_min_count        = 0
worker_max_count        = 2

db_instance_class        = "db.t4g.micro"
db_allocated_storage     = 20
db_max_allocated_storage = 50
db_multi_az              = false

log_retention_days  = 30
deletion_protection = true
