locals {
  lb_ips = [for a in leaseweb_public_cloud_load_balancer.main.ips : a.ip]
  # The apex (marketing site, Stripe webhooks), every tenant subdomain, the admin console.
  dns_names = {
    apex     = "${var.base_domain}."
    wildcard = "*.${var.base_domain}."
    admin    = "admin.${var.base_domain}."
  }
}

resource "leaseweb_dns_resource_record_set" "lb" {
  for_each    = local.dns_names
  domain_name = var.dns_domain
  name        = each.value
  type        = "A"
  content     = local.lb_ips
  ttl         = 300
}

resource "leaseweb_dns_resource_record_set" "caa" {
  domain_name = var.dns_domain
  name        = "${var.base_domain}."
  type        = "CAA"
  content = concat(
    [for ca in var.caa_issuers : "0 issue \"${ca}\""],
    [for ca in var.caa_issuers : "0 issuewild \"${ca}\""],
  )
  ttl = 3600
}
