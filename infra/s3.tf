# The uploads bucket holds originals (browsers PUT/POST them with pre-signed requests), the
# renditions bucket what the worker derives from them. Both private, encrypted, versioned.
#
# NOTE: SSE-S3 (AES-256) rather than SSE-KMS on purpose: with a CMK every pre-signed browser
# upload, every worker read and every CloudFront (OAC) read would also need kms grants in the
# task roles and the key policy, for no gain in who can read the data (bucket policy + IAM
# already decide that). Hence the CKV_AWS_145 skips below.

resource "aws_s3_bucket" "uploads" {
  #checkov:skip=CKV_AWS_145: SSE-S3 by design (see NOTE at the top of s3.tf): pre-signed browser uploads need no KMS grants.
  #checkov:skip=CKV_AWS_144: single-region service; versioning + noncurrent retention cover operator error. Add replication when a DR region is chosen.
  bucket = "${local.name}-uploads-${local.account_id}"
  # NOTE: only once the operator has turned deletion_protection off, to tear down (README.md):
  # `terraform destroy` then removes every object version instead of failing on them.
  force_destroy = !var.deletion_protection
}

resource "aws_s3_bucket" "renditions" {
  #checkov:skip=CKV_AWS_145: SSE-S3 by design (see NOTE at the top of s3.tf): CloudFront OAC reads need no KMS key policy.
  #checkov:skip=CKV_AWS_144: renditions are derived data; they can be re-rendered from the originals, so replication buys nothing.
  #checkov:skip=CKV2_AWS_62: nothing consumes rendition events; the worker is triggered by the uploads bucket only.
  bucket        = "${local.name}-renditions-${local.account_id}"
  force_destroy = !var.deletion_protection
}

# NOTE: ACLs disabled everywhere; access is decided by IAM and bucket policies only.
resource "aws_s3_bucket_ownership_controls" "uploads" {
  bucket = aws_s3_bucket.uploads.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_ownership_controls" "renditions" {
  bucket = aws_s3_bucket.renditions.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "uploads" {
  bucket                  = aws_s3_bucket.uploads.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_public_access_block" "renditions" {
  bucket                  = aws_s3_bucket.renditions.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "uploads" {
  bucket = aws_s3_bucket.uploads.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "renditions" {
  bucket = aws_s3_bucket.renditions.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "uploads" {
  bucket = aws_s3_bucket.uploads.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_versioning" "renditions" {
  bucket = aws_s3_bucket.renditions.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_logging" "uploads" {
  bucket        = aws_s3_bucket.uploads.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3/uploads/"
}

resource "aws_s3_bucket_logging" "renditions" {
  bucket        = aws_s3_bucket.renditions.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3/renditions/"
}

# NOTE: browsers upload originals straight to S3; the API only signs. Only POST (pre-signed
# POST form) and PUT (pre-signed PUT, whose signed Content-Type and If-None-Match are the
# headers a preflight asks for) from the configured origins; no response header is read, so
# none is exposed.
# devstack/provision.py gives the local buckets the same rule.
resource "aws_s3_bucket_cors_configuration" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  cors_rule {
    allowed_methods = ["POST", "PUT"]
    allowed_origins = var.cors_allowed_origins
    allowed_headers = ["Content-Type", "If-None-Match"]
    # NOTE: a multipart upload names each part by the ETag S3 answered its PUT with; a
    # browser reads that header only if it is exposed. No other header is.
    expose_headers  = ["ETag"]
    max_age_seconds = 3000
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  # NOTE: a browser that gives up mid-upload leaves parts that are billed but invisible.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  # NOTE: a backstop only. DELETE erases every version of an image before it answers, and the
  # worker removes any later upload of an original at once; a version a crash left behind
  # expires here. devstack/provision.py provisions the same rules locally (tests/infra/test_buckets.py).
  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.uploads]
}

resource "aws_s3_bucket_lifecycle_configuration" "renditions" {
  bucket = aws_s3_bucket.renditions.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  # NOTE: a backstop, as for uploads: a redelivered render rewrites a rendition in place, and
  # DELETE erases every version; old versions a crash left behind are only clutter.
  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.renditions]
}
