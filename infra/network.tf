# NOTE: the tasks reach S3 through a gateway endpoint and every regional AWS API they call
# through interface endpoints (endpoints.tf); browsers upload straight to S3 with pre-signed
# requests. The one call that cannot stay inside the VPC is CloudFront's CreateInvalidation
# (the API's DELETE, with enable_cdn): cloudfront.amazonaws.com is a global endpoint with no VPC
# endpoint. So the API tasks get subnets of their own, and only with the CDN a route from them
# to a NAT gateway; the worker's subnets (and the database's) never route to the internet.

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

# Private subnets hold the worker tasks, the one-off tasks, the interface endpoints and RDS.
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

# --- API subnets: private, with a way out to CloudFront only with the CDN --------------------

# NOTE: the API tasks alone, so that a route here concerns no other task. They exist with or
# without the CDN: switching enable_cdn changes a route, never where the API runs.
resource "aws_subnet" "api" {
  count = length(local.azs)

  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, 110 + count.index)

  tags = { Name = "${local.name}-api-${local.azs[count.index]}" }
}

# NOTE: one table per AZ, so that with a NAT gateway per AZ each zone's API tasks leave through
# their own zone's gateway. The S3 gateway endpoint adds its prefix-list route here too.
resource "aws_route_table" "api" {
  count = length(local.azs)

  vpc_id = aws_vpc.this.id

  tags = { Name = "${local.name}-api-${local.azs[count.index]}" }
}

resource "aws_route_table_association" "api" {
  count = length(local.azs)

  subnet_id      = aws_subnet.api[count.index].id
  route_table_id = aws_route_table.api[count.index].id
}

locals {
  # NOTE: one NAT gateway, or one per AZ (var.nat_gateway_per_az; README.md, "Cost"), and none
  # without the CDN: nothing else in the VPC needs the internet.
  nat_gateway_count = var.enable_cdn ? (var.nat_gateway_per_az ? length(local.azs) : 1) : 0
}

resource "aws_eip" "this" {
  count = local.nat_gateway_count

  domain = "vpc"

  tags = { Name = "${local.name}-nat-${local.azs[count.index]}" }

  depends_on = [aws_internet_gateway.this]
}

resource "aws_nat_gateway" "this" {
  count = local.nat_gateway_count

  allocation_id = aws_eip.this[count.index].id
  subnet_id     = aws_subnet.public[count.index].id

  tags = { Name = "${local.name}-${local.azs[count.index]}" }

  depends_on = [aws_internet_gateway.this]
}

# NOTE: the API's security group lets out HTTPS only (security_groups.tf, api_to_cloudfront),
# and every AWS API but CloudFront's still resolves to an endpoint inside the VPC.
resource "aws_route" "api_to_nat" {
  count = var.enable_cdn ? length(local.azs) : 0

  route_table_id         = aws_route_table.api[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[var.nat_gateway_per_az ? count.index : 0].id
}
