# Cloud Map: platform and workers tasks register A records under <name>.internal; the router's
# upstream pools (UPSTREAM_PLATFORM, UPSTREAM_WORKERS) name them, take every address as a
# member and re-resolve within the records' TTL.
resource "aws_service_discovery_private_dns_namespace" "main" {
  name        = local.discovery_namespace
  description = "Service discovery for ${local.name}"
  vpc         = aws_vpc.main.id
}

resource "aws_service_discovery_service" "app" {
  for_each = toset(["platform", "workers"])
  name     = each.key

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.main.id
    routing_policy = "MULTIVALUE"
    dns_records {
      type = "A"
      ttl  = 10
    }
  }

  # ECS reports task health (container health check when set, else running) to Cloud Map.
  health_check_custom_config {
    failure_threshold = 1
  }
}
