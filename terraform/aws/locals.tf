locals {
  name = "${var.project}-${var.environment}"
  azs  = slice(data.aws_availability_zones.available.names, 0, var.availability_zone_count)

  # /20 blocks: public 0-2, private (tasks) 4-6, data (RDS, ElastiCache) 8-10.
  public_subnets  = [for i, _ in local.azs : cidrsubnet(var.vpc_cidr, 4, i)]
  private_subnets = [for i, _ in local.azs : cidrsubnet(var.vpc_cidr, 4, i + 4)]
  data_subnets    = [for i, _ in local.azs : cidrsubnet(var.vpc_cidr, 4, i + 8)]

  # Listener ports inside the tasks (awsvpc: each task has its own address).
  port = {
    router_http    = 8000
    router_tls     = var.router_tls_container_port
    router_metrics = 9100 # the router's private operator listener (/metrics, /ready, /health)
    platform       = 8080
    workers        = 8090
    # Platform and workers operator listeners: loopback inside the task, for the container
    # health check (`<binary> healthcheck --live`); nothing outside the task needs them here.
    platform_operator = 9180
    workers_operator  = 9190
    postgres          = 5432
    redis             = 6379
  }

  # Cloud Map private DNS: the router finds platform and workers tasks by these names.
  discovery_namespace = "${local.name}.internal"
  platform_upstream   = "platform.${local.discovery_namespace}:${local.port.platform}"
  workers_upstream    = "workers.${local.discovery_namespace}:${local.port.workers}"

  image = { for k, r in aws_ecr_repository.app : k => "${r.repository_url}:${var.image_tag}" }

  # The four cron jobs (docs/operations.md): `workers trigger <job>` exits 0 done, 1 failed,
  # 3 already running elsewhere, 64 bad configuration or unknown job.
  cron_jobs = {
    "process-emails"    = { expression = "rate(5 minutes)", max_event_age = 240 }
    "process-donations" = { expression = "cron(0 * * * ? *)", max_event_age = 1800 }
    "cleanup-sessions"  = { expression = "cron(0 3 * * ? *)", max_event_age = 3600 }
    "generate-reports"  = { expression = "cron(0 6 ? * MON *)", max_event_age = 3600 }
  }

  common_env = {
    TENANT_BASE_DOMAIN = var.base_domain
    LOG_LEVEL          = var.log_level
    LOG_FORMAT         = "json"
  }
}
