output "ids" {
  description = "Instance IDs."
  value       = leaseweb_public_cloud_instance.this[*].id
}

output "private_ips" {
  description = "Each instance's address inside the private network (null until it has one)."
  value = [for inst in leaseweb_public_cloud_instance.this :
    try([for a in inst.ips : a.ip if try(cidrhost("${a.ip}/${local.prefix_len}", 0) == local.net_base, false)][0], null)
  ]
}

output "public_ips" {
  description = "Each instance's other (public) addresses."
  value = [for inst in leaseweb_public_cloud_instance.this :
    [for a in inst.ips : a.ip if !try(cidrhost("${a.ip}/${local.prefix_len}", 0) == local.net_base, false)]
  ]
}
