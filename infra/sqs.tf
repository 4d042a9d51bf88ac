# New originals -> S3 event -> SQS -> worker. Poison messages land in the dead-letter queue.

resource "aws_sqs_queue" "dead_letter" {
  name = "${local.name}-images-dlq"
  # NOTE: SSE-SQS: S3 event notifications cannot publish to a queue encrypted with the
  # AWS-managed aws/sqs key, and SSE-SQS needs no key policy at all.
  sqs_managed_sse_enabled = true
  # NOTE: the maximum, so an operator has two weeks to look at what failed and redrive it.
  message_retention_seconds = 1209600
}

resource "aws_sqs_queue" "images" {
  name                    = "${local.name}-images"
  sqs_managed_sse_enabled = true
  # NOTE: must exceed PICFORGE_WORKER_JOB_TIMEOUT_S (the longest one image may take), or a
  # message becomes visible again while its first worker is still rendering it.
  visibility_timeout_seconds = local.queue_visibility_timeout_s
  # NOTE: the worker long-polls; a queue default also makes any other consumer long-poll.
  receive_wait_time_seconds = 20
  message_retention_seconds = 345600

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    # NOTE: transient failures are retried by redelivery; five receives without a delete means
    # the message (not the infrastructure) is the problem.
    maxReceiveCount = 5
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "dead_letter" {
  queue_url = aws_sqs_queue.dead_letter.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.images.arn]
  })
}

data "aws_iam_policy_document" "images_queue" {
  # NOTE: only the uploads bucket of this account may send: SourceArn alone would let a bucket
  # of the same name in another account (after ours were deleted) publish here.
  statement {
    sid       = "AllowUploadsBucketNotifications"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.images.arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.uploads.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.images.arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "images" {
  queue_url = aws_sqs_queue.images.id
  policy    = data.aws_iam_policy_document.images_queue.json
}

resource "aws_s3_bucket_notification" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  queue {
    queue_arn = aws_sqs_queue.images.arn
    events    = ["s3:ObjectCreated:*"]
    # NOTE: only originals trigger work; anything else written to this bucket is ignored.
    filter_prefix = local.originals_prefix
  }

  # NOTE: S3 sends a test event when the notification is saved and fails if it may not.
  depends_on = [aws_sqs_queue_policy.images]
}
