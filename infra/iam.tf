# IAM for the ECS tasks: one execution role (what ECS needs to start a task) and one task role
# per process (what the code itself calls). Each task role's permissions are exactly the calls
# the code makes; tests/infra/policies.py reads these documents back for the IAM-enforcing
# end-to-end test, so keep them as aws_iam_policy_document data sources.

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    # NOTE: confused-deputy guard: only ECS acting for this account may assume these roles.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${var.aws_region}:${local.account_id}:*"]
    }
  }
}

# --- Execution role: pull the image, write logs, read the DB secret ----------------------

resource "aws_iam_role" "execution" {
  name               = "${local.name}-ecs-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "execution" {
  # NOTE: GetAuthorizationToken is account-wide: it supports no resource-level permissions, so
  # "*" is the only valid resource. The token alone grants nothing; the pull actions below are
  # limited to our repository.
  statement {
    sid       = "EcrAuthToken"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "EcrPull"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
    resources = [aws_ecr_repository.this.arn]
  }

  statement {
    sid       = "WriteContainerLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for group in aws_cloudwatch_log_group.ecs : "${group.arn}:*"]
  }

  # NOTE: the RDS-managed secret is encrypted with the AWS-managed aws/secretsmanager key, so
  # no kms:Decrypt is needed here.
  statement {
    sid       = "ReadDatabaseSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.db_secret_arn]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "ecs-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# --- API task role -----------------------------------------------------------------------

resource "aws_iam_role" "api_task" {
  name               = "${local.name}-api-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "api_task" {
  # NOTE: the API signs browser uploads; S3 honours a pre-signed POST/PUT only if the signer
  # may PutObject itself. DeleteObjectVersion serves image deletion: the buckets are
  # versioned, and DELETE erases every version and delete marker of the image, by version.
  statement {
    sid       = "SignUploadsAndDeleteOriginals"
    actions   = ["s3:PutObject", "s3:DeleteObjectVersion"]
    resources = ["${aws_s3_bucket.uploads.arn}/${local.originals_prefix}*"]
  }

  # NOTE: multipart uploads (service/multipart.py). CreateMultipartUpload, the pre-signed
  # UploadPart URLs and CompleteMultipartUpload are all authorised as s3:PutObject above;
  # listing the parts (resume, and the size check before completing) and aborting are not.
  statement {
    sid       = "ListAndAbortMultipartUploads"
    actions   = ["s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.uploads.arn}/${local.originals_prefix}*"]
  }

  # NOTE: GetObject backs the pre-signed rendition URLs (when no CDN fronts the bucket).
  # Renditions are erased in batches: DeleteObjects needs s3:DeleteObject as well as
  # s3:DeleteObjectVersion for its versioned entries.
  statement {
    sid       = "SignDownloadsAndDeleteRenditions"
    actions   = ["s3:GetObject", "s3:DeleteObject", "s3:DeleteObjectVersion"]
    resources = ["${aws_s3_bucket.renditions.arn}/${local.renditions_prefix}*"]
  }

  # NOTE: DELETE lists the versions it erases; only under our prefixes (a listing always
  # names its prefix, unlike HeadBucket below).
  statement {
    sid       = "ListOriginalVersions"
    actions   = ["s3:ListBucketVersions"]
    resources = [aws_s3_bucket.uploads.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.originals_prefix}*"]
    }
  }

  statement {
    sid       = "ListRenditionVersions"
    actions   = ["s3:ListBucketVersions"]
    resources = [aws_s3_bucket.renditions.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.renditions_prefix}*"]
    }
  }

  # NOTE: /readyz calls HeadBucket on both buckets, which S3 authorises as s3:ListBucket with
  # no s3:prefix in the request context: a `s3:prefix = renditions/*` condition would make
  # /readyz fail and the ALB drain every task. ListBucket is therefore unconditioned; on the
  # renditions bucket it also serves listing an image's renditions before deleting them.
  statement {
    sid       = "HeadAndListBuckets"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.uploads.arn, aws_s3_bucket.renditions.arn]
  }

  # NOTE: "reprocess" re-queues an image for the worker.
  statement {
    sid       = "RequeueImages"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.images.arn]
  }
}

resource "aws_iam_role_policy" "api_task" {
  name   = "api-task"
  role   = aws_iam_role.api_task.id
  policy = data.aws_iam_policy_document.api_task.json
}

# NOTE: with the CDN, DELETE invalidates the image's renditions at this one distribution.
# CreateInvalidation takes no path condition: the distribution is the narrowest resource.
data "aws_iam_policy_document" "api_task_cdn" {
  count = var.enable_cdn ? 1 : 0

  statement {
    sid       = "InvalidateDeletedRenditions"
    actions   = ["cloudfront:CreateInvalidation"]
    resources = [aws_cloudfront_distribution.this[0].arn]
  }
}

resource "aws_iam_role_policy" "api_task_cdn" {
  count = var.enable_cdn ? 1 : 0

  name   = "api-task-cdn"
  role   = aws_iam_role.api_task.id
  policy = data.aws_iam_policy_document.api_task_cdn[0].json
}

# --- Worker task role ----------------------------------------------------------------------

resource "aws_iam_role" "worker_task" {
  name               = "${local.name}-worker-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "worker_task" {
  # NOTE: GetObjectVersion reads the pinned version of an original (worker/records.py), so a
  # later upload under the same key is never what is rendered.
  statement {
    sid       = "ReadOriginals"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${aws_s3_bucket.uploads.arn}/${local.originals_prefix}*"]
  }

  # NOTE: the worker removes originals nobody will render: a later upload than the pinned
  # version, an upload for a deleted or expired image, an object with no record (reconcile).
  # Only by version: it cannot hide a current original behind a delete marker.
  statement {
    sid       = "RemoveUnwantedOriginals"
    actions   = ["s3:DeleteObjectVersion"]
    resources = ["${aws_s3_bucket.uploads.arn}/${local.originals_prefix}*"]
  }

  # NOTE: the sweep aborts the multipart upload of an image that expired before completing
  # it (worker/sweep.py), so S3 drops its parts. Aborting writes nothing and reads nothing.
  statement {
    sid       = "AbortAbandonedMultipartUploads"
    actions   = ["s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.uploads.arn}/${local.originals_prefix}*"]
  }

  # NOTE: finding an original's first version, and reconcile's walk of both buckets, only
  # under our prefixes.
  statement {
    sid       = "ListOriginalVersions"
    actions   = ["s3:ListBucketVersions"]
    resources = [aws_s3_bucket.uploads.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.originals_prefix}*"]
    }
  }

  statement {
    sid       = "ListRenditionVersions"
    actions   = ["s3:ListBucketVersions"]
    resources = [aws_s3_bucket.renditions.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.renditions_prefix}*"]
    }
  }

  # NOTE: the worker treats NoSuchKey as "original is gone" (image deleted before its event
  # was handled) and drops the message. S3 answers a GetObject on a missing key with NoSuchKey
  # only if the caller may s3:ListBucket, and with AccessDenied otherwise, which the worker
  # would retry five times into the DLQ. A prefix condition cannot be used: the check carries
  # no s3:prefix.
  statement {
    sid       = "TellMissingOriginalsApart"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.uploads.arn]
  }

  # NOTE: the worker erases renditions written for an image deleted while it rendered, and
  # superseded ones, every version (worker/handlers.py): DeleteObjects needs s3:DeleteObject,
  # and s3:DeleteObjectVersion for its versioned entries.
  statement {
    sid       = "WriteRenditions"
    actions   = ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"]
    resources = ["${aws_s3_bucket.renditions.arn}/${local.renditions_prefix}*"]
  }

  statement {
    sid = "ConsumeImagesQueue"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [aws_sqs_queue.images.arn]
  }

  # NOTE: reconcile queues a reprocess of an image whose renditions are missing or superseded.
  statement {
    sid       = "RequeueImages"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.images.arn]
  }
}

resource "aws_iam_role_policy" "worker_task" {
  name   = "worker-task"
  role   = aws_iam_role.worker_task.id
  policy = data.aws_iam_policy_document.worker_task.json
}

# --- RDS enhanced monitoring -------------------------------------------------------------

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${local.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
}

# NOTE: the AWS-managed policy is scoped to the RDSOS* log groups enhanced monitoring writes.
resource "aws_iam_role_policy_attachment" "this" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}
