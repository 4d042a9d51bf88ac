# VPC endpoints: how tasks without a NAT gateway reach AWS.

# NOTE: the gateway endpoint is free and carries all image bytes (originals, renditions) and
# the ECR image layers, which ECR serves from S3. No endpoint policy: ECR's layer bucket is
# AWS-owned, and the task roles already limit what the tasks may do in S3.
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${var.aws_region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]

  tags = { Name = "${local.name}-s3" }
}

# NOTE: interface endpoints the tasks need: ECR (api for auth, dkr for the manifest) to pull
# the image, CloudWatch Logs for the awslogs driver, Secrets Manager for the DB credentials
# (the ECS agent fetches them through the task's ENI), SQS for the queue. Each costs per AZ
# per hour (see README.md, "Cost").
locals {
  interface_endpoints = toset(["ecr.api", "ecr.dkr", "logs", "secretsmanager", "sqs"])
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.interface_endpoints

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${var.aws_region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints.id]
  private_dns_enabled = true

  tags = { Name = "${local.name}-${each.key}" }
}
