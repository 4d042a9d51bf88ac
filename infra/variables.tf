variable "name" {
  type        = string
  description = "Name prefix for every resource; combined with the environment (picforge-prod)."
  default     = "picforge"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2-21 lowercase letters, digits or hyphens, starting with a letter (it ends up in bucket names)."
  }
}

variable "environment" {
  type        = string
  description = "Deployment environment; one state per environment."

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "aws_region" {
  type        = string
  description = "AWS region to deploy into."

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like eu-west-1."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR block of the VPC; /16 leaves room for a /24 per subnet."
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR of /20 or larger."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones (names, e.g. eu-west-1a) for subnets, tasks and interface endpoints; the ALB and RDS need two. Pinned, not discovered: subnet CIDRs follow this order, so the set must never shift."

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3 && length(distinct(var.availability_zones)) == length(var.availability_zones)
    error_message = "availability_zones must list 2 or 3 distinct zones."
  }
}

variable "certificate_arn" {
  type        = string
  description = "ARN of an issued ACM certificate (same region) for the ALB's HTTPS listener."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "image_tag" {
  type        = string
  description = "Tag of the picforge image in the ECR repository to run (tags are immutable: use the git SHA)."

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid Docker tag other than \"latest\" (the repository's tags are immutable)."
  }
}

variable "cors_allowed_origins" {
  type        = list(string)
  description = "Browser origins (scheme://host[:port]) allowed to upload to the uploads bucket with pre-signed POST/PUT."

  validation {
    condition     = length(var.cors_allowed_origins) > 0 && alltrue([for o in var.cors_allowed_origins : can(regex("^https?://[^/*]+$", o))])
    error_message = "cors_allowed_origins must be non-empty origins like https://app.example.com, without paths or wildcards."
  }
}

variable "enable_cdn" {
  type        = bool
  description = "Serve renditions through CloudFront (Origin Access Control); its URL becomes PICFORGE_PUBLIC_BASE_URL."
  default     = true
}

variable "nat_gateway_per_az" {
  type        = bool
  description = "With enable_cdn: a NAT gateway in every AZ (DELETE's CloudFront invalidations survive the loss of a zone) instead of one (cheaper; while its zone is down, DELETE fails and keeps the image). No effect without the CDN, which needs no NAT."
  default     = false
}

variable "alarm_email" {
  type        = string
  description = "Email address subscribed to the alarm topic; null for none (subscribe something else to the topic)."
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an email address or null."
  }
}

variable "api_cpu" {
  type        = number
  description = "Fargate CPU units for one API task (1024 = 1 vCPU)."
  default     = 512
}

variable "api_memory" {
  type        = number
  description = "Fargate memory (MiB) for one API task; must be a valid pairing with api_cpu."
  default     = 1024
}

variable "api_min_count" {
  type        = number
  description = "Minimum running API tasks (2+ keeps one per AZ through a deploy or an AZ loss)."
  default     = 2

  validation {
    condition     = var.api_min_count >= 1
    error_message = "api_min_count must be at least 1: the ALB needs a target."
  }
}

variable "api_max_count" {
  type        = number
  description = "Maximum running API tasks under autoscaling."
  default     = 6
}

variable "worker_cpu" {
  type        = number
  description = "Fargate CPU units for one worker task; image decoding is CPU-bound."
  default     = 1024
}

variable "worker_memory" {
  type        = number
  description = "Fargate memory (MiB) for one worker task; large originals are decoded in memory."
  default     = 2048
}

variable "worker_render_memory_mb" {
  type        = number
  description = "Address-space cap (MiB) of each render process in a worker task (PICFORGE_RENDER_MEMORY_MB); quarantine's pixel limits follow from it."
  default     = 1024
  validation {
    condition     = var.worker_render_memory_mb >= 256
    error_message = "worker_render_memory_mb must be at least 256 (the worker refuses less)."
  }
}

variable "worker_concurrency" {
  type        = number
  description = "Images one worker task processes at once (PICFORGE_WORKER_CONCURRENCY)."
  default     = 2

  validation {
    condition     = var.worker_concurrency >= 1 && var.worker_concurrency <= 10
    error_message = "worker_concurrency must be 1-10 (SQS returns at most 10 messages per receive)."
  }
}

variable "worker_min_count" {
  type        = number
  description = "Minimum worker tasks; 0 lets the service scale to zero when the queue is idle."
  default     = 0

  validation {
    condition     = var.worker_min_count >= 0
    error_message = "worker_min_count must be 0 or more."
  }
}

variable "worker_max_count" {
  type        = number
  description = "Maximum worker tasks under autoscaling."
  default     = 8

  validation {
    condition     = var.worker_max_count >= 1 && var.worker_max_count <= 20
    error_message = "worker_max_count must be 1-20 (one scaling step is generated per task)."
  }
}

variable "worker_backlog_per_task" {
  type        = number
  description = "Queued plus in-flight messages one worker task is expected to absorb; desired tasks = ceil(backlog / this)."
  default     = 20

  validation {
    condition     = var.worker_backlog_per_task >= 1
    error_message = "worker_backlog_per_task must be at least 1."
  }
}

variable "db_instance_class" {
  type        = string
  description = "RDS instance class for PostgreSQL."
  default     = "db.t4g.medium"
}

variable "db_max_connections" {
  type        = number
  description = "max_connections of the database, for the connection budget; null: the default of db_instance_class (database_access.tf). Set it with a custom parameter group."
  default     = null
}

variable "database_proxy" {
  type        = string
  description = "RDS Proxy in front of the database for the api and worker: \"auto\" puts it there only when their connections at autoscaling maximums would not fit the instance's max_connections (with the reserve), \"always\" or \"never\" decide regardless (\"never\" then refuses a budget that does not fit)."
  default     = "auto"

  validation {
    condition     = contains(["auto", "always", "never"], var.database_proxy)
    error_message = "database_proxy must be \"auto\", \"always\" or \"never\"."
  }
}

variable "api_db_pool_size" {
  type        = number
  description = "The most database connections one API task opens, each kept once open (PICFORGE_DB_POOL_SIZE); counted in the connection budget."
  default     = 10

  validation {
    condition     = var.api_db_pool_size >= 1 && var.api_db_pool_size <= 100
    error_message = "api_db_pool_size must be 1-100."
  }
}

variable "db_allocated_storage" {
  type        = number
  description = "Initial gp3 storage for the database (GiB)."
  default     = 20

  validation {
    condition     = var.db_allocated_storage >= 20
    error_message = "db_allocated_storage must be at least 20 GiB."
  }
}

variable "db_max_allocated_storage" {
  type        = number
  description = "Ceiling for RDS storage autoscaling (GiB)."
  default     = 100
}

variable "db_multi_az" {
  type        = bool
  description = "Run RDS with a synchronous standby in a second AZ (doubles the instance cost)."
  default     = true
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the CloudWatch log groups (application, RDS)."
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (e.g. 30, 90, 365)."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the database and load balancer from deletion and the buckets and ECR repository from deletion while non-empty; set false (and apply) only to tear down."
  default     = true
}
