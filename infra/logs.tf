# Where logs go: CloudWatch Logs (KMS-encrypted) for the containers and RDS; the logs bucket
# for S3 server access logs, ALB access logs and VPC flow logs.

resource "aws_cloudwatch_log_group" "ecs" {
  for_each = toset(["api", "worker", "migrate", "keys"])

  name              = "/ecs/${local.name}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

# NOTE: created here so RDS's exported logs get our retention and key instead of a group RDS
# would create with neither.
resource "aws_cloudwatch_log_group" "rds" {
  for_each = toset(["postgresql", "upgrade"])

  name              = "/aws/rds/instance/${local.name}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18: this is the access-log target; logging it into itself would loop.
  #checkov:skip=CKV_AWS_145: ALB access logs and S3 server access logs can only be delivered to SSE-S3 buckets.
  #checkov:skip=CKV_AWS_144: operational logs; losing a region's logs with the region is acceptable.
  #checkov:skip=CKV2_AWS_62: nothing reacts to log objects; they are read during incidents.
  bucket        = "${local.name}-logs-${local.account_id}"
  force_destroy = !var.deletion_protection
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs]
}
