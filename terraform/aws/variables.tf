variable "project" {
  description = "Short name prefixed to every resource name."
  type        = string
  default     = "donations"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.project))
    error_message = "project: 2-15 characters, lower-case letters, digits and '-', starting with a letter."
  }
}

variable "environment" {
  description = "Deployment stage; part of every name."
  type        = string
  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like us-east-1."
  }
}

variable "availability_zone_count" {
  description = "How many availability zones the VPC, tasks, database and cache span."
  type        = number
  default     = 3
  validation {
    condition     = var.availability_zone_count >= 2 && var.availability_zone_count <= 3
    error_message = "availability_zone_count must be 2 or 3 (Multi-AZ RDS and ElastiCache need two)."
  }
}

variable "vpc_cidr" {
  description = "Address block of the VPC; split into /20 public, private and data subnets per zone."
  type        = string
  default     = "10.40.0.0/16"
  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 18
    error_message = "vpc_cidr must be an IPv4 CIDR block of /18 or larger."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper, but a zone outage cuts the others' egress) instead of one per zone."
  type        = bool
  default     = false
}

variable "base_domain" {
  description = "Base domain: tenants at <slug>.<base_domain>, admins at admin.<base_domain> (TENANT_BASE_DOMAIN)."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.base_domain))
    error_message = "base_domain must be a lower-case DNS name such as donations.example.org."
  }
}

variable "route53_zone_id" {
  description = "ID of an existing public hosted zone for base_domain; empty creates a new zone (then delegate to its name servers, see outputs)."
  type        = string
  default     = ""
  validation {
    condition     = var.route53_zone_id == "" || can(regex("^Z[A-Z0-9]{1,31}$", var.route53_zone_id))
    error_message = "route53_zone_id must be empty or a hosted zone ID such as Z0123456789ABCDEFGHIJ."
  }
}

variable "caa_issuers" {
  description = "Certificate authorities allowed to issue for the base domain (CAA records); the router uses ACME with Let's Encrypt."
  type        = list(string)
  default     = ["letsencrypt.org"]
  validation {
    condition     = length(var.caa_issuers) > 0
    error_message = "caa_issuers needs at least one CA domain."
  }
}

variable "image_tag" {
  description = "Tag of the router, platform and workers images in this deployment's ECR repositories (tags are immutable: use the release version or git SHA)."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid, immutable image tag (not 'latest')."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture the images are built for: X86_64 or ARM64 (Graviton, about 20% cheaper on Fargate)."
  type        = string
  default     = "X86_64"
  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "services_enabled" {
  description = "Run the long-lived services. Keep false on the first apply: fill the external secrets, run the migrate and db-roles tasks, then apply with true (README: first deployment)."
  type        = bool
  default     = true
}

variable "service_sizes" {
  description = "Fargate size and task counts per service (autoscaling moves between min_count and max_count)."
  type = map(object({
    cpu       = number
    memory    = number
    min_count = number
    max_count = number
  }))
  default = {
    router   = { cpu = 512, memory = 1024, min_count = 2, max_count = 6 }
    platform = { cpu = 1024, memory = 2048, min_count = 3, max_count = 10 }
    workers  = { cpu = 512, memory = 1024, min_count = 2, max_count = 4 }
  }
  validation {
    condition     = length(setsubtract(["router", "platform", "workers"], keys(var.service_sizes))) == 0
    error_message = "service_sizes needs entries for router, platform and workers."
  }
  validation {
    condition = alltrue([for s in values(var.service_sizes) :
      contains([256, 512, 1024, 2048, 4096], s.cpu) && s.memory >= 2 * s.cpu && s.memory <= 8 * s.cpu
    && s.min_count >= 1 && s.max_count >= s.min_count])
    error_message = "Each service needs a Fargate cpu (256-4096), memory between 2 x and 8 x cpu MiB (Fargate's pairs), and 1 <= min_count <= max_count."
  }
}

variable "cron_task_size" {
  description = "Fargate size of the one-shot `workers trigger <job>` tasks and of the migrate/db-roles tasks."
  type = object({
    cpu    = number
    memory = number
  })
  default = { cpu = 256, memory = 512 }
  validation {
    condition     = contains([256, 512, 1024, 2048], var.cron_task_size.cpu) && var.cron_task_size.memory >= 512
    error_message = "cron_task_size: cpu 256-2048, memory at least 512 MiB."
  }
}

variable "autoscaling_targets" {
  description = "Target-tracking goals in percent: average CPU and memory utilisation per service."
  type = object({
    cpu    = number
    memory = number
  })
  default = { cpu = 60, memory = 75 }
  validation {
    condition     = var.autoscaling_targets.cpu >= 20 && var.autoscaling_targets.cpu <= 90 && var.autoscaling_targets.memory >= 20 && var.autoscaling_targets.memory <= 90
    error_message = "autoscaling_targets must be between 20 and 90 percent."
  }
}

variable "router_tls_container_port" {
  description = "Container port of the router's TLS listener; NLB port 443 forwards here (TCP, the router terminates TLS)."
  type        = number
  default     = 8443
  validation {
    condition     = var.router_tls_container_port >= 1024 && var.router_tls_container_port <= 65535 && !contains([8000, 8080, 8090, 9100], var.router_tls_container_port)
    error_message = "router_tls_container_port must be an unprivileged port not used by another listener."
  }
}

variable "acme_enabled" {
  description = "Routers order and renew certificates for verified custom domains over ACME (HTTP-01 through the NLB's port 80)."
  type        = bool
  default     = true
}

variable "acme_directory_url" {
  description = "ACME directory the routers order from: Let's Encrypt production, or its staging CA (untrusted roots, generous limits) for non-production environments."
  type        = string
  default     = "https://acme-v02.api.letsencrypt.org/directory"
  validation {
    condition     = startswith(var.acme_directory_url, "https://")
    error_message = "acme_directory_url must be an https:// URL."
  }
}

variable "acme_contact" {
  description = "ACME account contact, a mailto: URL (expiry and policy mail from the CA); empty for none."
  type        = string
  default     = ""
  validation {
    condition     = var.acme_contact == "" || can(regex("^mailto:[^ ,]+@[^ ,]+$", var.acme_contact))
    error_message = "acme_contact must be empty or one mailto: URL."
  }
}

variable "extra_environment" {
  description = "Extra plain environment variables per service (router, platform, workers), e.g. settings added by later releases. Never put secrets here."
  type        = map(map(string))
  default     = {}
  validation {
    condition     = length(setsubtract(keys(var.extra_environment), ["router", "platform", "workers"])) == 0
    error_message = "extra_environment keys must be router, platform or workers."
  }
}

variable "health_check_commands" {
  description = "Container health check per service (router, platform, workers): each binary probes its own operator listener. ECS replaces a task whose check fails, so the default is liveness (`healthcheck --live`, /health): a database outage must not restart every task. Readiness (/ready) is what the NLB and the router's upstream checks (/api/health) use. A missing key means no container health check."
  type        = map(list(string))
  default = {
    router   = ["CMD", "/usr/local/bin/router", "healthcheck", "--live"]
    platform = ["CMD", "/usr/local/bin/platform", "healthcheck", "--live"]
    workers  = ["CMD", "/usr/local/bin/workers", "healthcheck", "--live"]
  }
}

variable "stripe_publishable_key" {
  description = "Stripe publishable key handed to Stripe.js (STRIPE_PUBLISHABLE_KEY); public by design."
  type        = string
  default     = ""
  validation {
    condition     = var.stripe_publishable_key == "" || can(regex("^pk_(live|test)_", var.stripe_publishable_key))
    error_message = "stripe_publishable_key must be empty or start with pk_live_ or pk_test_."
  }
}

variable "platform_fee_percent" {
  description = "Platform fee per gift in percent (STRIPE_PLATFORM_FEE_PERCENT), at most two decimals."
  type        = number
  default     = 2.0
  validation {
    condition     = var.platform_fee_percent >= 0 && var.platform_fee_percent <= 100 && floor(var.platform_fee_percent * 100) == var.platform_fee_percent * 100
    error_message = "platform_fee_percent must be 0-100 with at most two decimals."
  }
}

variable "email_from" {
  description = "Sender of receipts and reports (EMAIL_FROM), e.g. \"Donations <no-reply@example.org>\"."
  type        = string
  validation {
    condition     = can(regex("@", var.email_from))
    error_message = "email_from must contain an e-mail address."
  }
}

variable "log_level" {
  description = "LOG_LEVEL for all three binaries (a tracing filter such as info or platform=debug,info)."
  type        = string
  default     = "info"
}

variable "db_instance_class" {
  description = "RDS instance class (the seeds size production at db.r6g.large)."
  type        = string
  default     = "db.r6g.large"
  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.db_instance_class))
    error_message = "db_instance_class must look like db.r6g.large."
  }
}

variable "db_engine_version" {
  description = "PostgreSQL major version (the parameter group family follows it)."
  type        = string
  default     = "16"
  validation {
    condition     = contains(["15", "16", "17"], var.db_engine_version)
    error_message = "db_engine_version must be 15, 16 or 17."
  }
}

variable "db_allocated_storage" {
  description = "Initial gp3 storage in GiB."
  type        = number
  default     = 100
  validation {
    condition     = var.db_allocated_storage >= 20 && var.db_allocated_storage <= 65536
    error_message = "db_allocated_storage must be 20-65536 GiB."
  }
}

variable "db_max_allocated_storage" {
  description = "Storage autoscaling ceiling in GiB."
  type        = number
  default     = 500
  validation {
    condition     = var.db_max_allocated_storage >= 20
    error_message = "db_max_allocated_storage must be at least 20 GiB."
  }
}

variable "db_multi_az" {
  description = "Synchronous standby in a second zone with automatic failover."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated backups; point-in-time recovery reaches back this far."
  type        = number
  default     = 30
  validation {
    condition     = var.db_backup_retention_days >= 7 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be 7-35 (PITR needs backups)."
  }
}

variable "db_name" {
  description = "Database name."
  type        = string
  default     = "donations"
  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must be a lower-case PostgreSQL identifier."
  }
}

variable "db_owner_username" {
  description = "RDS master user; owns the schema and runs migrations (DATABASE_MIGRATION_URL)."
  type        = string
  default     = "donations_owner"
  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_owner_username)) && !contains(["postgres", "admin", "rdsadmin"], var.db_owner_username)
    error_message = "db_owner_username must be a lower-case identifier other than postgres, admin or rdsadmin."
  }
}

variable "redis_node_type" {
  description = "ElastiCache node type (the seeds size production at cache.r6g.large)."
  type        = string
  default     = "cache.r6g.large"
  validation {
    condition     = can(regex("^cache\\.[a-z0-9]+\\.[a-z0-9]+$", var.redis_node_type))
    error_message = "redis_node_type must look like cache.r6g.large."
  }
}

variable "redis_engine_version" {
  description = "Redis OSS engine version."
  type        = string
  default     = "7.1"
}

variable "redis_num_cache_clusters" {
  description = "Nodes in the replication group (one primary, the rest replicas in other zones)."
  type        = number
  default     = 2
  validation {
    condition     = var.redis_num_cache_clusters >= 2 && var.redis_num_cache_clusters <= 6
    error_message = "redis_num_cache_clusters must be 2-6 (automatic failover needs a replica)."
  }
}

variable "redis_auth_token" {
  description = "Redis AUTH token (16-128 printable characters, no @, \", / or spaces). Pass it as TF_VAR_redis_auth_token; it ends up in the state, which is why the state bucket is encrypted and private."
  type        = string
  sensitive   = true
  validation {
    condition     = length(var.redis_auth_token) >= 16 && length(var.redis_auth_token) <= 128 && can(regex("^[A-Za-z0-9!&#$^<>-]+$", var.redis_auth_token))
    error_message = "redis_auth_token must be 16-128 characters from A-Z a-z 0-9 ! & # $ ^ < > -."
  }
}

variable "secret_versions" {
  description = "Bump a number to generate and store a new value on the next apply: database (the owner and the three login-role passwords), edge_signing (EDGE_SIGNING_SECRET; invalidates donor cancel links already sent), cron (CRON_SECRET)."
  type = object({
    database     = number
    edge_signing = number
    cron         = number
  })
  default = { database = 1, edge_signing = 1, cron = 1 }
}

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group."
  type        = number
  default     = 365
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 365, ... 3653)."
  }
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (confirm the subscription mail); empty for none."
  type        = string
  default     = ""
  validation {
    condition     = var.alarm_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be empty or an e-mail address."
  }
}

variable "deletion_protection" {
  description = "Protect the database and the load balancer from deletion. To tear an environment down, apply with false first, then destroy."
  type        = bool
  default     = true
}

variable "postgres_client_image" {
  description = "Image with psql for the one-shot db-roles task (creates the login roles and sets their passwords)."
  type        = string
  default     = "public.ecr.aws/docker/library/postgres:16-alpine"
}
