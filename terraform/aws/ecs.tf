resource "aws_ecs_cluster" "main" {
  name = local.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

locals {
  db_url   = { for k, s in aws_secretsmanager_secret.db : k => "${s.arn}:url::" }
  redis    = aws_secretsmanager_secret.redis_url.arn
  edge     = aws_secretsmanager_secret.edge_signing.arn
  external = { for k, s in aws_secretsmanager_secret.external : k => s.arn }

  platform_env = merge(local.common_env, {
    PLATFORM_LISTEN             = "0.0.0.0:${local.port.platform}"
    PLATFORM_OPERATOR_LISTEN    = "127.0.0.1:${local.port.platform_operator}"
    STRIPE_PUBLISHABLE_KEY      = var.stripe_publishable_key
    STRIPE_PLATFORM_FEE_PERCENT = tostring(var.platform_fee_percent)
  }, lookup(var.extra_environment, "platform", {}))

  platform_secrets = {
    DATABASE_URL          = local.db_url["platform"]
    REDIS_URL             = local.redis
    EDGE_SIGNING_SECRET   = local.edge
    STRIPE_SECRET_KEY     = local.external["stripe_secret_key"]
    STRIPE_WEBHOOK_SECRET = local.external["stripe_webhook_secret"]
  }

  workers_env = merge(local.common_env, {
    WORKERS_LISTEN          = "0.0.0.0:${local.port.workers}"
    WORKERS_OPERATOR_LISTEN = "127.0.0.1:${local.port.workers_operator}"
    # EventBridge Scheduler starts the cron jobs (scheduler.tf); the in-process scheduler
    # stays off so they do not also run from the service.
    WORKERS_SCHEDULER = "false"
    EMAIL_FROM        = var.email_from
  }, lookup(var.extra_environment, "workers", {}))

  workers_secrets = {
    DATABASE_URL      = local.db_url["workers"]
    CRON_SECRET       = aws_secretsmanager_secret.cron.arn
    SMTP_URL          = local.external["smtp_url"]
    STRIPE_SECRET_KEY = local.external["stripe_secret_key"]
  }
}

module "task_router" {
  source             = "../modules/ecs-task"
  family             = "${local.name}-router"
  container_name     = "router"
  image              = local.image["router"]
  ecr_repository_arn = aws_ecr_repository.app["router"].arn
  command            = ["serve"]
  cpu                = var.service_sizes["router"].cpu
  memory             = var.service_sizes["router"].memory
  cpu_architecture   = var.cpu_architecture
  ports              = [local.port.router_http, local.port.router_tls, local.port.router_metrics]
  environment = merge(local.common_env, {
    ROUTER_HTTP_LISTEN = "0.0.0.0:${local.port.router_http}"
    # The TLS listener: the NLB's 443 target group forwards to this container port.
    ROUTER_HTTPS_LISTEN    = "0.0.0.0:${local.port.router_tls}"
    ROUTER_OPERATOR_LISTEN = "0.0.0.0:${local.port.router_metrics}"
    ROUTER_THREADS         = tostring(max(1, floor(var.service_sizes["router"].cpu / 1024)))
    UPSTREAM_PLATFORM      = local.platform_upstream
    UPSTREAM_WORKERS       = local.workers_upstream
    ACME_ENABLED           = tostring(var.acme_enabled)
    ACME_DIRECTORY_URL     = var.acme_directory_url
    # While Redis is unreachable each router limits alone with rates divided by this: the
    # service's minimum count (autoscaling may run more, which then errs on the generous side).
    ROUTER_RATE_LIMIT_INSTANCES = tostring(var.service_sizes["router"].min_count)
    }, var.acme_contact == "" ? {} : { ACME_CONTACT = var.acme_contact },
  lookup(var.extra_environment, "router", {}))
  secrets = {
    DATABASE_URL        = local.db_url["router"]
    EDGE_SIGNING_SECRET = local.edge
    REDIS_URL           = local.redis # rate limits shared across router instances
    CERT_ENCRYPTION_KEY = aws_secretsmanager_secret.cert_encryption_key.arn
  }
  stop_timeout         = 45 # above lifecycle.shutdown_timeout_secs (30)
  health_check_command = lookup(var.health_check_commands, "router", null)
  log_retention_days   = var.log_retention_days
  kms_key_arn          = aws_kms_key.main.arn
}

module "task_platform" {
  source               = "../modules/ecs-task"
  family               = "${local.name}-platform"
  container_name       = "platform"
  image                = local.image["platform"]
  ecr_repository_arn   = aws_ecr_repository.app["platform"].arn
  command              = ["serve"]
  cpu                  = var.service_sizes["platform"].cpu
  memory               = var.service_sizes["platform"].memory
  cpu_architecture     = var.cpu_architecture
  ports                = [local.port.platform]
  environment          = local.platform_env
  secrets              = local.platform_secrets
  health_check_command = lookup(var.health_check_commands, "platform", null)
  log_retention_days   = var.log_retention_days
  kms_key_arn          = aws_kms_key.main.arn
}

module "task_workers" {
  source               = "../modules/ecs-task"
  family               = "${local.name}-workers"
  container_name       = "workers"
  image                = local.image["workers"]
  ecr_repository_arn   = aws_ecr_repository.app["workers"].arn
  command              = ["run"]
  cpu                  = var.service_sizes["workers"].cpu
  memory               = var.service_sizes["workers"].memory
  cpu_architecture     = var.cpu_architecture
  ports                = [local.port.workers]
  environment          = local.workers_env
  secrets              = local.workers_secrets
  stop_timeout         = 30 # WORKERS_SHUTDOWN_GRACE_SECS (20) plus hand-back
  health_check_command = lookup(var.health_check_commands, "workers", null)
  log_retention_days   = var.log_retention_days
  kms_key_arn          = aws_kms_key.main.arn
}

# One-shot `workers trigger <job>`: EventBridge Scheduler overrides the command per job.
module "task_cron" {
  source             = "../modules/ecs-task"
  family             = "${local.name}-cron"
  container_name     = "workers"
  image              = local.image["workers"]
  ecr_repository_arn = aws_ecr_repository.app["workers"].arn
  command            = ["trigger", "process-emails"]
  cpu                = var.cron_task_size.cpu
  memory             = var.cron_task_size.memory
  cpu_architecture   = var.cpu_architecture
  environment        = merge(local.workers_env, { WORKERS_LISTEN = "127.0.0.1:${local.port.workers}" })
  secrets            = local.workers_secrets
  log_retention_days = var.log_retention_days
  kms_key_arn        = aws_kms_key.main.arn
}

# `platform migrate up` as the owner role (DATABASE_MIGRATION_URL). Run before every rollout
# whose release adds migrations (README).
module "task_migrate" {
  source             = "../modules/ecs-task"
  family             = "${local.name}-migrate"
  container_name     = "platform"
  image              = local.image["platform"]
  ecr_repository_arn = aws_ecr_repository.app["platform"].arn
  command            = ["migrate", "up"]
  cpu                = var.cron_task_size.cpu
  memory             = var.cron_task_size.memory
  cpu_architecture   = var.cpu_architecture
  environment        = local.platform_env
  secrets = merge(local.platform_secrets, {
    DATABASE_MIGRATION_URL = local.db_url["owner"]
  })
  log_retention_days = var.log_retention_days
  kms_key_arn        = aws_kms_key.main.arn
}

locals {
  # The login roles of ops/dev/login-roles.sql (keep the two in step), with the generated
  # passwords from Secrets Manager. Idempotent; run after `migrate up` (which creates the
  # NOLOGIN roles granted here) and after every bump of secret_versions.database.
  db_roles_script = <<-EOT
    set -eu
    psql -v ON_ERROR_STOP=1 -v web_pw="$PLATFORM_PASSWORD" -v router_pw="$ROUTER_PASSWORD" -v workers_pw="$WORKERS_PASSWORD" <<'SQL'
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'platform_web') THEN
            CREATE ROLE platform_web LOGIN NOINHERIT;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'platform_router') THEN
            CREATE ROLE platform_router LOGIN;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'platform_workers') THEN
            CREATE ROLE platform_workers LOGIN;
        END IF;
    END
    $$;
    ALTER ROLE platform_web PASSWORD :'web_pw';
    ALTER ROLE platform_router PASSWORD :'router_pw';
    ALTER ROLE platform_workers PASSWORD :'workers_pw';
    GRANT platform_app, platform_service TO platform_web;
    GRANT platform_edge TO platform_router;
    GRANT platform_service TO platform_workers;
    SQL
  EOT
}

module "task_db_roles" {
  source         = "../modules/ecs-task"
  family         = "${local.name}-db-roles"
  container_name = "psql"
  image          = var.postgres_client_image
  command        = ["sh", "-c", local.db_roles_script]
  cpu            = var.cron_task_size.cpu
  memory         = var.cron_task_size.memory
  environment = {
    PGHOST     = aws_db_instance.main.address
    PGPORT     = tostring(aws_db_instance.main.port)
    PGDATABASE = var.db_name
    PGSSLMODE  = "require"
  }
  secrets = {
    PGUSER            = "${aws_secretsmanager_secret.db["owner"].arn}:username::"
    PGPASSWORD        = "${aws_secretsmanager_secret.db["owner"].arn}:password::"
    PLATFORM_PASSWORD = "${aws_secretsmanager_secret.db["platform"].arn}:password::"
    ROUTER_PASSWORD   = "${aws_secretsmanager_secret.db["router"].arn}:password::"
    WORKERS_PASSWORD  = "${aws_secretsmanager_secret.db["workers"].arn}:password::"
  }
  log_retention_days = var.log_retention_days
  kms_key_arn        = aws_kms_key.main.arn
}

locals {
  services = {
    router = {
      task            = module.task_router.task_definition_arn
      security_groups = [aws_security_group.router.id]
      registry        = null
    }
    platform = {
      task            = module.task_platform.task_definition_arn
      security_groups = [aws_security_group.platform.id]
      registry        = aws_service_discovery_service.app["platform"].arn
    }
    workers = {
      task            = module.task_workers.task_definition_arn
      security_groups = [aws_security_group.workers.id]
      registry        = aws_service_discovery_service.app["workers"].arn
    }
  }
}

resource "aws_ecs_service" "app" {
  for_each                           = local.services
  name                               = each.key
  cluster                            = aws_ecs_cluster.main.id
  task_definition                    = each.value.task
  launch_type                        = "FARGATE"
  desired_count                      = var.services_enabled ? var.service_sizes[each.key].min_count : 0
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = each.key == "router" ? 30 : null
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = each.value.security_groups
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = each.key == "router" ? local.router_listeners : {}
    content {
      target_group_arn = aws_lb_target_group.router[load_balancer.key].arn
      container_name   = "router"
      container_port   = load_balancer.value.container_port
    }
  }

  dynamic "service_registries" {
    for_each = each.value.registry == null ? [] : [each.value.registry]
    content {
      registry_arn = service_registries.value
    }
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # Autoscaling owns the running count once the service exists: turning services_enabled on
  # raises the scalable target's minimum (autoscaling.tf), which starts the tasks.
  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.router]
}
