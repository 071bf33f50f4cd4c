resource "aws_route53_zone" "main" {
  #checkov:skip=CKV2_AWS_38:DNSSEC needs an asymmetric KMS key in us-east-1 and a DS record at the registrar, outside this configuration; README says how to turn it on after delegation.
  #checkov:skip=CKV2_AWS_39:Query logs must go to a log group in us-east-1 and would log every tenant-name lookup; the router's access log already records every request by host.
  count   = var.route53_zone_id == "" ? 1 : 0
  name    = var.base_domain
  comment = "${local.name}: apex, tenants (*.) and admin"
}

locals {
  zone_id = var.route53_zone_id == "" ? aws_route53_zone.main[0].zone_id : var.route53_zone_id
  # The apex (marketing site, webhooks), every tenant subdomain, and the admin console.
  nlb_names = {
    apex     = var.base_domain
    wildcard = "*.${var.base_domain}"
    admin    = "admin.${var.base_domain}"
  }
}

resource "aws_route53_record" "nlb" {
  for_each = local.nlb_names
  zone_id  = local.zone_id
  name     = each.value
  type     = "A"

  alias {
    name                   = aws_lb.public.dns_name
    zone_id                = aws_lb.public.zone_id
    evaluate_target_health = true
  }
}

# Only these CAs may issue for the base domain and its subdomains.
resource "aws_route53_record" "caa" {
  zone_id = local.zone_id
  name    = var.base_domain
  type    = "CAA"
  ttl     = 3600
  records = concat(
    [for ca in var.caa_issuers : "0 issue \"${ca}\""],
    [for ca in var.caa_issuers : "0 issuewild \"${ca}\""],
  )
}
