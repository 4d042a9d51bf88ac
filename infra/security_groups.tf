# Security groups: the only allowed paths are internet -> ALB (80, 443), ALB -> api (8000),
# tasks -> RDS (5432; with RDS Proxy: tasks -> proxy -> RDS, and api -> RDS for the one-off
# tasks), tasks -> interface endpoints (443), tasks -> S3 (443, prefix list) and, with the CDN
# only, api -> the internet on 443 for CloudFront's API (network.tf).

resource "aws_security_group" "alb" {
  name        = "${local.name}-alb"
  description = "Internet-facing ALB in front of the picforge API"
  vpc_id      = aws_vpc.this.id
}

resource "aws_security_group" "api" {
  name        = "${local.name}-api"
  description = "picforge API tasks (and the one-off migration task)"
  vpc_id      = aws_vpc.this.id
}

resource "aws_security_group" "worker" {
  name        = "${local.name}-worker"
  description = "picforge worker tasks"
  vpc_id      = aws_vpc.this.id
}

resource "aws_security_group" "db" {
  name        = "${local.name}-db"
  description = "picforge PostgreSQL"
  vpc_id      = aws_vpc.this.id
}

resource "aws_security_group" "endpoints" {
  name        = "${local.name}-endpoints"
  description = "Interface VPC endpoints used by the picforge tasks"
  vpc_id      = aws_vpc.this.id
}

resource "aws_security_group" "db_proxy" {
  #checkov:skip=CKV2_AWS_5: attached to aws_db_proxy.this (vpc_security_group_ids), a resource type this graph check does not know.
  count = local.db_proxy_enabled ? 1 : 0

  name        = "${local.name}-db-proxy"
  description = "RDS Proxy in front of picforge PostgreSQL"
  vpc_id      = aws_vpc.this.id
}

locals {
  task_security_groups = {
    api    = aws_security_group.api.id
    worker = aws_security_group.worker.id
  }

  # NOTE: who reaches the instance itself. With RDS Proxy the worker goes through the proxy
  # only; the api group keeps its way to the instance because the migrate and keys tasks run
  # with it and log in as the master user, which the proxy does not serve.
  db_direct_security_groups = { for name, id in local.task_security_groups : name => id if !local.db_proxy_enabled || name == "api" }
  db_proxy_client_groups    = { for name, id in local.task_security_groups : name => id if local.db_proxy_enabled }
}

# --- ALB ---------------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from the internet"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  #checkov:skip=CKV_AWS_260: port 80 only answers with a 301 redirect to HTTPS (alb.tf); closing it would break http:// links instead of upgrading them.
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from the internet, redirected to HTTPS by the listener"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_egress_rule" "alb_to_api" {
  security_group_id            = aws_security_group.alb.id
  description                  = "ALB to API tasks"
  referenced_security_group_id = aws_security_group.api.id
  ip_protocol                  = "tcp"
  from_port                    = local.api_port
  to_port                      = local.api_port
}

# --- Tasks -------------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "api_from_alb" {
  security_group_id            = aws_security_group.api.id
  description                  = "API port from the ALB only"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = local.api_port
  to_port                      = local.api_port
}

resource "aws_vpc_security_group_egress_rule" "task_to_db" {
  for_each = local.db_direct_security_groups

  security_group_id            = each.value
  description                  = "${each.key} to PostgreSQL"
  referenced_security_group_id = aws_security_group.db.id
  ip_protocol                  = "tcp"
  from_port                    = local.db_port
  to_port                      = local.db_port
}

resource "aws_vpc_security_group_egress_rule" "task_to_endpoints" {
  for_each = local.task_security_groups

  security_group_id            = each.value
  description                  = "${each.key} to the interface endpoints (ECR, Logs, Secrets Manager, SQS)"
  referenced_security_group_id = aws_security_group.endpoints.id
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
}

resource "aws_vpc_security_group_egress_rule" "task_to_s3" {
  for_each = local.task_security_groups

  security_group_id = each.value
  description       = "${each.key} to S3 through the gateway endpoint"
  prefix_list_id    = aws_vpc_endpoint.s3.prefix_list_id
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

# NOTE: CloudFront's API (cloudfront.amazonaws.com) is global, has no VPC endpoint and no
# prefix list (com.amazonaws.global.cloudfront.origin-facing is the edges' side, not the API),
# so HTTPS to anywhere is the narrowest rule that reaches it; the route to the NAT gateway is
# in the API's subnets only, and the worker's group has no such rule.
resource "aws_vpc_security_group_egress_rule" "api_to_cloudfront" {
  count = var.enable_cdn ? 1 : 0

  security_group_id = aws_security_group.api.id
  description       = "api to the CloudFront API (invalidations on DELETE) through the NAT gateway"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

# --- Endpoints and database ---------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_task" {
  for_each = local.task_security_groups

  security_group_id            = aws_security_group.endpoints.id
  description                  = "HTTPS from ${each.key} tasks"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
}

resource "aws_vpc_security_group_ingress_rule" "db_from_task" {
  for_each = local.db_direct_security_groups

  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from ${each.key} tasks"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = local.db_port
  to_port                      = local.db_port
}

# --- RDS Proxy (database_proxy.tf): tasks -> proxy -> instance -------------------------------

resource "aws_vpc_security_group_egress_rule" "task_to_db_proxy" {
  for_each = local.db_proxy_client_groups

  security_group_id            = each.value
  description                  = "${each.key} to RDS Proxy"
  referenced_security_group_id = aws_security_group.db_proxy[0].id
  ip_protocol                  = "tcp"
  from_port                    = local.db_port
  to_port                      = local.db_port
}

resource "aws_vpc_security_group_ingress_rule" "db_proxy_from_task" {
  for_each = local.db_proxy_client_groups

  security_group_id            = aws_security_group.db_proxy[0].id
  description                  = "PostgreSQL from ${each.key} tasks"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = local.db_port
  to_port                      = local.db_port
}

resource "aws_vpc_security_group_egress_rule" "db_proxy_to_db" {
  count = local.db_proxy_enabled ? 1 : 0

  security_group_id            = aws_security_group.db_proxy[0].id
  description                  = "RDS Proxy to PostgreSQL"
  referenced_security_group_id = aws_security_group.db.id
  ip_protocol                  = "tcp"
  from_port                    = local.db_port
  to_port                      = local.db_port
}

resource "aws_vpc_security_group_ingress_rule" "db_from_db_proxy" {
  count = local.db_proxy_enabled ? 1 : 0

  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from RDS Proxy"
  referenced_security_group_id = aws_security_group.db_proxy[0].id
  ip_protocol                  = "tcp"
  from_port                    = local.db_port
  to_port                      = local.db_port
}
