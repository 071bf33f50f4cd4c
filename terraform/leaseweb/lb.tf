# The Leaseweb load balancer in TCP mode on 80 and 443: TLS and ACME HTTP-01 stay with the
# router. Health: the router's private operator listener (/health on 9100, firewalled to the
# load balancer and the private network; the router refuses /health on 80/443).
resource "leaseweb_public_cloud_load_balancer" "main" {
  region    = var.region
  type      = var.load_balancer_type
  reference = "${local.name}-lb"
  contract = {
    type              = var.contract.type
    term              = var.contract.term
    billing_frequency = var.contract.billing_frequency
  }
}

locals {
  router_ports = { http = 80, https = 443 }
}

resource "leaseweb_public_cloud_target_group" "router" {
  for_each = local.router_ports
  name     = "${local.name}-router-${each.key}"
  protocol = "TCP"
  port     = each.value
  region   = var.region
  health_check = {
    protocol = "HTTP"
    method   = "GET"
    uri      = "/health"
    port     = 9100
  }
}

resource "leaseweb_public_cloud_load_balancer_listener" "router" {
  for_each         = local.router_ports
  load_balancer_id = leaseweb_public_cloud_load_balancer.main.id
  protocol         = "TCP"
  port             = each.value
  default_rule = {
    target_group_id = leaseweb_public_cloud_target_group.router[each.key].id
  }
}
