# Public Network Load Balancer: plain TCP on 80 and 443, so TLS and ACME HTTP-01 stay with the
# router (an ALB or CloudFront would terminate TLS themselves and break both). Client
# addresses are preserved, so the router's per-client rate limits see real clients.
resource "aws_lb" "public" {
  #checkov:skip=CKV_AWS_91:NLB access logs cover TLS listeners only; these listeners are plain TCP, so there is nothing to log. The router writes one access-log line per request.
  #checkov:skip=CKV2_AWS_20:Not an ALB: TCP pass-through by design, TLS ends in the router, which must answer ACME HTTP-01 on port 80. Port 80 also serves plain HTTP: the router's redirect (listen.redirect_http_to_https) has no environment variable and is not set here (README).
  name                             = "${local.name}-nlb"
  load_balancer_type               = "network"
  internal                         = false
  subnets                          = aws_subnet.public[*].id
  security_groups                  = [aws_security_group.nlb.id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.deletion_protection
}

locals {
  router_listeners = {
    http = { listen = 80, container_port = local.port.router_http }
    tls  = { listen = 443, container_port = local.port.router_tls }
  }
}

resource "aws_lb_target_group" "router" {
  for_each             = local.router_listeners
  name                 = "${local.name}-router-${each.key}"
  target_type          = "ip"
  protocol             = "TCP"
  port                 = each.value.container_port
  vpc_id               = aws_vpc.main.id
  preserve_client_ip   = "true"
  deregistration_delay = 35 # the router drains in at most 30 s (lifecycle.shutdown_timeout_secs)

  # Both target groups (80 -> 8000, 443 -> the TLS listener) check the router's private
  # operator listener (9100; the router refuses /health on its public ports), not the port
  # they forward to: /health answers 200 while the process runs, even when no platform
  # instance is ready (the router then serves its own error pages). A TCP or TLS check on 8443
  # would need a certificate for the bare task address and proves less.
  health_check {
    protocol            = "HTTP"
    port                = tostring(local.port.router_metrics)
    path                = "/health"
    matcher             = "200-399"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 3
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "router" {
  for_each          = local.router_listeners
  load_balancer_arn = aws_lb.public.arn
  protocol          = "TCP"
  port              = each.value.listen

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.router[each.key].arn
  }
}
