# NOTE: no NAT gateway and no route to the internet from the private subnets. Tasks reach
# S3 through a gateway endpoint and every other AWS API through interface endpoints
# (endpoints.tf); browsers upload straight to S3 with pre-signed requests, so nothing in the
# VPC needs to call out to the internet.

resource "aws_vpc" "this" {
  cidr_block = var.vpc_cidr
  # NOTE: both are required for interface endpoints' private DNS names to resolve.
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = local.name }
}

# NOTE: the default security group is left with no rules, so anything launched without an
# explicit group gets no traffic at all.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = { Name = local.name }
}

# Public subnets hold only the internet-facing ALB.
resource "aws_subnet" "public" {
  count = length(local.azs)

  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, count.index)
  # NOTE: the ALB gets its addresses from ELB; nothing here should get a public IP by default.
  map_public_ip_on_launch = false

  tags = { Name = "${local.name}-public-${local.azs[count.index]}" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  tags = { Name = "${local.name}-public" }
}

resource "aws_route" "this" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count = length(local.azs)

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

# Private subnets hold the ECS tasks, the interface endpoints and RDS.
resource "aws_subnet" "private" {
  count = length(local.azs)

  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, 100 + count.index)

  tags = { Name = "${local.name}-private-${local.azs[count.index]}" }
}

# NOTE: one route table without a default route; the S3 gateway endpoint adds its prefix-list
# route here.
resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id

  tags = { Name = "${local.name}-private" }
}

resource "aws_route_table_association" "private" {
  count = length(local.azs)

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

# NOTE: flow logs go to the logs bucket (cheaper than CloudWatch for a record nobody reads
# until an incident) and need no IAM role: log delivery writes under the bucket policy.
resource "aws_flow_log" "this" {
  vpc_id               = aws_vpc.this.id
  traffic_type         = "ALL"
  log_destination_type = "s3"
  log_destination      = "${aws_s3_bucket.logs.arn}/vpc-flow-logs/"

  depends_on = [aws_s3_bucket_policy.logs]
}
