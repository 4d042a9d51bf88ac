# VPC endpoints: how the tasks reach AWS without leaving the VPC (the API's CloudFront calls,
# which no endpoint serves, are the one exception: network.tf).
#
# NOTE: every endpoint carries a policy naming exactly what this deployment's tasks use through
# it, for principals of this account only: a task whose credentials leak, or code that goes
# astray, cannot use the endpoints to reach any other bucket, queue, secret or log group (the
# exfiltration path an endpoint without a policy leaves open). The task roles' own policies
# (iam.tf, database_access.tf) still decide what each role may do within that.

# NOTE: the gateway endpoint is free and carries all image bytes (originals, renditions) and
# the ECR image layers, which ECR serves from an AWS-owned bucket (its documented name).
# NOTE: the object calls the tasks make, including the versioned ones (the buckets are
# versioned; erasing an image deletes every version), on this deployment's two buckets only.
data "aws_iam_policy_document" "s3_endpoint" {
  statement {
    sid = "ProductBuckets"
    actions = [
      "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
      "s3:ListBucket", "s3:ListBucketVersions",
    ]
    resources = [aws_s3_bucket.uploads.arn, "${aws_s3_bucket.uploads.arn}/*", aws_s3_bucket.renditions.arn, "${aws_s3_bucket.renditions.arn}/*"]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "EcrImageLayers"
    actions   = ["s3:GetObject"]
    resources = ["arn:${local.partition}:s3:::prod-${var.aws_region}-starport-layer-bucket/*"]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${var.aws_region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = concat([aws_route_table.private.id], aws_route_table.api[*].id)
  policy            = data.aws_iam_policy_document.s3_endpoint.json

  tags = { Name = "${local.name}-s3" }
}

# NOTE: interface endpoints the tasks need: ECR (api for auth, dkr for the manifest) to pull
# the image, CloudWatch Logs for the awslogs driver, Secrets Manager for the master secret (the
# ECS agent fetches it through the task's ENI) and the keys task's new secrets, SQS for the
# queue. Each costs per AZ per hour (see README.md, "Cost").
locals {
  interface_endpoints = toset(["ecr.api", "ecr.dkr", "logs", "secretsmanager", "sqs"])

  # NOTE: what may pass each interface endpoint. ecr:GetAuthorizationToken has no resource but
  # "*"; the token alone pulls nothing the repository statement does not allow.
  endpoint_grants = {
    "ecr.api" = [
      { actions = ["ecr:GetAuthorizationToken"], resources = ["*"] },
      { actions = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"], resources = [aws_ecr_repository.this.arn] },
    ]
    "ecr.dkr" = [
      { actions = ["ecr:GetAuthorizationToken"], resources = ["*"] },
      { actions = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"], resources = [aws_ecr_repository.this.arn] },
    ]
    "logs" = [
      { actions = ["logs:CreateLogStream", "logs:PutLogEvents"], resources = [for group in aws_cloudwatch_log_group.ecs : "${group.arn}:*"] },
    ]
    "secretsmanager" = [
      { actions = ["secretsmanager:GetSecretValue"], resources = [local.db_secret_arn] },
      { actions = ["secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:DeleteSecret"], resources = [local.keys_secret_arns] },
    ]
    "sqs" = [
      { actions = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:SendMessage"], resources = [aws_sqs_queue.images.arn] },
    ]
  }
}

data "aws_iam_policy_document" "interface_endpoint" {
  for_each = local.interface_endpoints

  dynamic "statement" {
    for_each = local.endpoint_grants[each.key]
    content {
      actions   = statement.value.actions
      resources = statement.value.resources
      principals {
        type        = "AWS"
        identifiers = ["*"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:PrincipalAccount"
        values   = [local.account_id]
      }
    }
  }
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.interface_endpoints

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${var.aws_region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints.id]
  private_dns_enabled = true
  policy              = data.aws_iam_policy_document.interface_endpoint[each.key].json

  tags = { Name = "${local.name}-${each.key}" }
}
