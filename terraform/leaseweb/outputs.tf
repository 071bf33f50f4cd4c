output "load_balancer_ips" {
  description = "Public addresses of the load balancer (the A records point here)."
  value       = local.lb_ips
}

output "hosts" {
  description = "Instance IDs and private addresses per role."
  value = {
    router           = { ids = module.router.ids, private = module.router.private_ips, public = module.router.public_ips }
    platform         = { ids = module.platform.ids, private = module.platform.private_ips }
    workers          = { ids = module.workers.ids, private = module.workers.private_ips }
    postgres_primary = { ids = module.postgres_primary.ids, private = module.postgres_primary.private_ips }
    postgres_replica = { ids = module.postgres_replica.ids, private = module.postgres_replica.private_ips }
    redis_primary    = { ids = module.redis_primary.ids, private = module.redis_primary.private_ips }
    redis_replica    = { ids = module.redis_replica.ids, private = module.redis_replica.private_ips }
  }
}

# Provider 1.31 manages target groups but not their members: register the routers with the
# public cloud API (X-LSW-Auth = LEASEWEB_TOKEN). Run: terraform output -raw register_targets | sh
output "register_targets" {
  description = "Shell commands registering every router instance in both router target groups."
  value = join("\n", [for k, tg in leaseweb_public_cloud_target_group.router : join(" ", [
    "curl -fsS -X POST -H \"X-LSW-Auth: $LEASEWEB_TOKEN\" -H 'Content-Type: application/json'",
    "https://api.leaseweb.com/publicCloud/v1/targetGroups/${tg.id}/registerTargets",
    "-d '${jsonencode(module.router.ids)}'",
  ])])
}
