# Who may talk to whom: the internet -> NLB -> router -> platform/workers -> PostgreSQL/Redis.
# Every rule is its own resource so the moto test (and an auditor) can list them one by one.
# Groups without egress rules allow no outbound traffic (answers to allowed inbound traffic
# still flow: security groups are stateful).

resource "aws_security_group" "nlb" {
  name        = "${local.name}-nlb"
  description = "Public NLB: 80 and 443 from anywhere, forwards to the router only"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "router" {
  name        = "${local.name}-router"
  description = "Router tasks: client traffic and health checks from the NLB"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "platform" {
  name        = "${local.name}-platform"
  description = "Platform tasks: reached only by the router"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "workers" {
  name        = "${local.name}-workers"
  description = "Workers service and cron tasks: /api/cron from the router only"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "migrate" {
  #checkov:skip=CKV2_AWS_5:Attached at run time: the migrate and db-roles tasks are started with `aws ecs run-task` (output run_task), not by a service.
  name        = "${local.name}-migrate"
  description = "One-shot migrate and db-roles tasks: database only"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "database" {
  name        = "${local.name}-database"
  description = "PostgreSQL: from router, platform, workers and migrations"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "redis" {
  name        = "${local.name}-redis"
  description = "Redis: from platform and router (rate limits)"
  vpc_id      = aws_vpc.main.id
}

locals {
  # name => [group, port, peer group]: "group accepts port from peer" plus the matching egress
  # on the peer.
  sg_links = {
    nlb_router_http   = [aws_security_group.router.id, local.port.router_http, aws_security_group.nlb.id]
    nlb_router_tls    = [aws_security_group.router.id, local.port.router_tls, aws_security_group.nlb.id]
    nlb_router_health = [aws_security_group.router.id, local.port.router_metrics, aws_security_group.nlb.id]
    router_platform   = [aws_security_group.platform.id, local.port.platform, aws_security_group.router.id]
    router_workers    = [aws_security_group.workers.id, local.port.workers, aws_security_group.router.id]
    router_database   = [aws_security_group.database.id, local.port.postgres, aws_security_group.router.id]
    platform_database = [aws_security_group.database.id, local.port.postgres, aws_security_group.platform.id]
    workers_database  = [aws_security_group.database.id, local.port.postgres, aws_security_group.workers.id]
    migrate_database  = [aws_security_group.database.id, local.port.postgres, aws_security_group.migrate.id]
    platform_redis    = [aws_security_group.redis.id, local.port.redis, aws_security_group.platform.id]
    router_redis      = [aws_security_group.redis.id, local.port.redis, aws_security_group.router.id]
  }

  # Outbound to the internet (through NAT): HTTPS for ECR, Secrets Manager, Stripe and ACME;
  # SMTP submission for the workers.
  internet_egress = {
    router_https   = [aws_security_group.router.id, 443]
    platform_https = [aws_security_group.platform.id, 443]
    workers_https  = [aws_security_group.workers.id, 443]
    workers_smtp   = [aws_security_group.workers.id, 587]
    workers_smtps  = [aws_security_group.workers.id, 465]
    migrate_https  = [aws_security_group.migrate.id, 443]
  }
}

resource "aws_vpc_security_group_ingress_rule" "public" {
  for_each          = { for p in [80, 443] : tostring(p) => p }
  security_group_id = aws_security_group.nlb.id
  description       = "Clients (TCP pass-through; the router terminates TLS and answers ACME HTTP-01)"
  ip_protocol       = "tcp"
  from_port         = each.value
  to_port           = each.value
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "link" {
  for_each                     = local.sg_links
  security_group_id            = each.value[0]
  description                  = replace(each.key, "_", " ")
  ip_protocol                  = "tcp"
  from_port                    = each.value[1]
  to_port                      = each.value[1]
  referenced_security_group_id = each.value[2]
}

resource "aws_vpc_security_group_egress_rule" "link" {
  for_each                     = local.sg_links
  security_group_id            = each.value[2]
  description                  = replace(each.key, "_", " ")
  ip_protocol                  = "tcp"
  from_port                    = each.value[1]
  to_port                      = each.value[1]
  referenced_security_group_id = each.value[0]
}

resource "aws_vpc_security_group_egress_rule" "internet" {
  for_each          = local.internet_egress
  security_group_id = each.value[0]
  description       = replace(each.key, "_", " ")
  ip_protocol       = "tcp"
  from_port         = each.value[1]
  to_port           = each.value[1]
  cidr_ipv4         = "0.0.0.0/0"
}
