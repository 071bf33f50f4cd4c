# Leaseweb public cloud: instances for router, platform and workers running the ops/systemd
# units, and PostgreSQL and Redis on instances of their own: Leaseweb offers no managed
# database or cache, so this tree sets up replication and backups on those hosts itself.
# Every instance joins the account's private network; services listen there and each host's
# nftables (the provider has no firewall resource) lets in only what its role needs.

locals {
  name       = "${var.project}-${var.environment}"
  pg_version = "15" # Debian 12's PostgreSQL
  base_pkgs  = ["nftables", "curl", "ca-certificates", "unattended-upgrades"]
  private    = "ip saddr ${var.private_network_cidr}"
  # Prometheus reaches the operator listeners only (router 9100, platform 9180, workers 9190;
  # node exporter shares 9100 with the router on no host: the router runs alone on its hosts).
  monitoring = length(var.monitoring_cidrs) == 0 ? [] : ["ip saddr { ${join(", ", var.monitoring_cidrs)} } tcp dport { 9100, 9180, 9190 } accept"]

  # Units each role enables from the release (ops/systemd); they start on `release.sh activate`.
  release_units = {
    router   = "router.service"
    platform = "platform.service platform-migrate.service"
    workers  = "workers.service workers-cron@process-emails.timer workers-cron@process-donations.timer workers-cron@cleanup-sessions.timer workers-cron@generate-reports.timer"
    postgres = "platform-backup.timer"
  }
  install_release = {
    for role, units in local.release_units : role => templatefile("${path.module}/cloud-init/install-release.sh.tftpl", {
      version = var.release.version, url = var.release.url, sha256 = var.release.sha256, units = units
    })
  }

  # /etc/platform/release.env per role: what `release.sh activate` restarts and checks.
  release_env = {
    router   = "RELEASE_SERVICES=\"router\"\nRELEASE_SMOKE_URLS=\"http://127.0.0.1:9100/ready\"\nRELEASE_MIGRATE=0\nRELEASE_BACKUP=0\n"
    platform = "RELEASE_SERVICES=\"platform\"\nRELEASE_SMOKE_URLS=\"http://127.0.0.1:9180/ready\"\nRELEASE_MIGRATE=1\nRELEASE_BACKUP=0\n"
    workers  = "RELEASE_SERVICES=\"workers\"\nRELEASE_SMOKE_URLS=\"http://127.0.0.1:9190/ready\"\nRELEASE_MIGRATE=0\nRELEASE_BACKUP=0\n"
    postgres = "RELEASE_SERVICES=\"\"\nRELEASE_SMOKE_URLS=\"\"\nRELEASE_MIGRATE=0\nRELEASE_BACKUP=1\n"
  }

  host_common = {
    name                 = local.name
    region               = var.region
    image_id             = var.image_id
    contract             = var.contract
    ssh_authorized_keys  = var.ssh_authorized_keys
    admin_cidrs          = var.admin_cidrs
    private_network_cidr = var.private_network_cidr
    user_data_base64     = var.user_data_base64
  }

  install_commands = [["sh", "/usr/local/sbin/platform-install-release"]]
}

# Non-secret settings, one KEY=VALUE a line (EnvironmentFile= of the ops/systemd units).
locals {
  env = {
    platform = {
      TENANT_BASE_DOMAIN = var.base_domain
      PLATFORM_LISTEN    = "0.0.0.0:8080"
      # Operator listener: firewalled to monitoring_cidrs; release.sh probes it on loopback.
      PLATFORM_OPERATOR_LISTEN = "0.0.0.0:9180"
      STRIPE_PUBLISHABLE_KEY   = var.stripe_publishable_key
    }
    workers = {
      TENANT_BASE_DOMAIN = var.base_domain
      WORKERS_LISTEN     = "0.0.0.0:8090"
      # Operator listener: firewalled to monitoring_cidrs; release.sh probes it on loopback.
      WORKERS_OPERATOR_LISTEN = "0.0.0.0:9190"
      WORKERS_SCHEDULER       = "false" # the workers-cron@*.timer units run the four cron jobs
      EMAIL_FROM              = var.email_from
    }
    backup = merge({
      PGHOST     = "127.0.0.1"
      PGPORT     = "5432"
      PGDATABASE = "donations"
      PGUSER     = "platform_backup"
      PGSSLMODE  = "require"
      }, var.backup_s3.uri == "" ? {} : {
      BACKUP_S3_URI      = var.backup_s3.uri
      BACKUP_S3_ENDPOINT = var.backup_s3.endpoint
    })
  }
  env_text = { for k, m in local.env : k => join("", [for key in sort(keys(m)) : "${key}=${m[key]}\n"]) }
}

# ---------------------------------------------------------------------------------------
# PostgreSQL: one primary and streaming replicas (hot standby); hourly pg_dump backups on
# the primary (platform-backup.timer from the release, uploaded when backup_s3 is set).

module "postgres_primary" {
  source               = "../modules/leaseweb-host"
  name                 = local.host_common.name
  region               = local.host_common.region
  image_id             = local.host_common.image_id
  contract             = local.host_common.contract
  ssh_authorized_keys  = local.host_common.ssh_authorized_keys
  admin_cidrs          = local.host_common.admin_cidrs
  private_network_cidr = local.host_common.private_network_cidr
  user_data_base64     = local.host_common.user_data_base64

  role           = "postgres-primary"
  instance_count = 1
  instance_type  = var.instances["postgres"].type
  disk_gb        = var.instances["postgres"].disk_gb
  disk_type      = var.instances["postgres"].disk_type
  packages       = concat(local.base_pkgs, ["postgresql", "postgresql-client", "awscli"])
  firewall_rules = concat(["${local.private} tcp dport 5432 accept"], local.monitoring)
  files = {
    "/usr/local/sbin/platform-postgres-setup" = templatefile("${path.module}/cloud-init/postgres.sh.tftpl", {
      role = "the primary", pg_version = local.pg_version, private_network_cidr = var.private_network_cidr
    })
    "/usr/local/sbin/platform-install-release" = local.install_release["postgres"]
    "/etc/platform/release.env"                = local.release_env["postgres"]
    "/etc/platform/backup.env"                 = local.env_text["backup"]
  }
  commands = concat([["sh", "/usr/local/sbin/platform-postgres-setup"]], local.install_commands)
}

module "postgres_replica" {
  source               = "../modules/leaseweb-host"
  name                 = local.host_common.name
  region               = local.host_common.region
  image_id             = local.host_common.image_id
  contract             = local.host_common.contract
  ssh_authorized_keys  = local.host_common.ssh_authorized_keys
  admin_cidrs          = local.host_common.admin_cidrs
  private_network_cidr = local.host_common.private_network_cidr
  user_data_base64     = local.host_common.user_data_base64

  role           = "postgres-replica"
  instance_count = var.instances["postgres"].count - 1
  instance_type  = var.instances["postgres"].type
  disk_gb        = var.instances["postgres"].disk_gb
  disk_type      = var.instances["postgres"].disk_type
  packages       = concat(local.base_pkgs, ["postgresql", "postgresql-client"])
  firewall_rules = concat(["${local.private} tcp dport 5432 accept"], local.monitoring)
  files = {
    "/usr/local/sbin/platform-postgres-setup" = templatefile("${path.module}/cloud-init/postgres.sh.tftpl", {
      role = "a replica", pg_version = local.pg_version, private_network_cidr = var.private_network_cidr
    })
    "/usr/local/sbin/platform-replica-init" = templatefile("${path.module}/cloud-init/pg-replica-init.sh.tftpl", {
      primary = module.postgres_primary.private_ips[0], pg_version = local.pg_version, slot = "replica"
    })
  }
  commands = [["sh", "/usr/local/sbin/platform-postgres-setup"]]
}

# ---------------------------------------------------------------------------------------
# Redis: a primary and replicas (replicaof); AUTH from /etc/redis/auth.conf.

module "redis_primary" {
  source               = "../modules/leaseweb-host"
  name                 = local.host_common.name
  region               = local.host_common.region
  image_id             = local.host_common.image_id
  contract             = local.host_common.contract
  ssh_authorized_keys  = local.host_common.ssh_authorized_keys
  admin_cidrs          = local.host_common.admin_cidrs
  private_network_cidr = local.host_common.private_network_cidr
  user_data_base64     = local.host_common.user_data_base64

  role           = "redis-primary"
  instance_count = 1
  instance_type  = var.instances["redis"].type
  disk_gb        = var.instances["redis"].disk_gb
  disk_type      = var.instances["redis"].disk_type
  packages       = concat(local.base_pkgs, ["redis-server"])
  firewall_rules = ["${local.private} tcp dport 6379 accept"]
  files = {
    "/usr/local/sbin/platform-redis-setup" = templatefile("${path.module}/cloud-init/redis.sh.tftpl", { role = "the primary", primary = "" })
  }
  commands = [["sh", "/usr/local/sbin/platform-redis-setup"]]
}

module "redis_replica" {
  source               = "../modules/leaseweb-host"
  name                 = local.host_common.name
  region               = local.host_common.region
  image_id             = local.host_common.image_id
  contract             = local.host_common.contract
  ssh_authorized_keys  = local.host_common.ssh_authorized_keys
  admin_cidrs          = local.host_common.admin_cidrs
  private_network_cidr = local.host_common.private_network_cidr
  user_data_base64     = local.host_common.user_data_base64

  role           = "redis-replica"
  instance_count = var.instances["redis"].count - 1
  instance_type  = var.instances["redis"].type
  disk_gb        = var.instances["redis"].disk_gb
  disk_type      = var.instances["redis"].disk_type
  packages       = concat(local.base_pkgs, ["redis-server"])
  firewall_rules = ["${local.private} tcp dport 6379 accept"]
  files = {
    "/usr/local/sbin/platform-redis-setup" = templatefile("${path.module}/cloud-init/redis.sh.tftpl", {
      role = "a replica", primary = module.redis_primary.private_ips[0]
    })
  }
  commands = [["sh", "/usr/local/sbin/platform-redis-setup"]]
}

# ---------------------------------------------------------------------------------------
# Application hosts.

module "platform" {
  source               = "../modules/leaseweb-host"
  name                 = local.host_common.name
  region               = local.host_common.region
  image_id             = local.host_common.image_id
  contract             = local.host_common.contract
  ssh_authorized_keys  = local.host_common.ssh_authorized_keys
  admin_cidrs          = local.host_common.admin_cidrs
  private_network_cidr = local.host_common.private_network_cidr
  user_data_base64     = local.host_common.user_data_base64

  role           = "platform"
  instance_count = var.instances["platform"].count
  instance_type  = var.instances["platform"].type
  disk_gb        = var.instances["platform"].disk_gb
  disk_type      = var.instances["platform"].disk_type
  packages       = concat(local.base_pkgs, ["postgresql-client"])
  firewall_rules = concat(["${local.private} tcp dport 8080 accept"], local.monitoring)
  files = {
    "/usr/local/sbin/platform-install-release" = local.install_release["platform"]
    "/etc/platform/release.env"                = local.release_env["platform"]
    "/etc/platform/platform.env"               = local.env_text["platform"]
  }
  commands = local.install_commands
}

module "workers" {
  source               = "../modules/leaseweb-host"
  name                 = local.host_common.name
  region               = local.host_common.region
  image_id             = local.host_common.image_id
  contract             = local.host_common.contract
  ssh_authorized_keys  = local.host_common.ssh_authorized_keys
  admin_cidrs          = local.host_common.admin_cidrs
  private_network_cidr = local.host_common.private_network_cidr
  user_data_base64     = local.host_common.user_data_base64

  role           = "workers"
  instance_count = var.instances["workers"].count
  instance_type  = var.instances["workers"].type
  disk_gb        = var.instances["workers"].disk_gb
  disk_type      = var.instances["workers"].disk_type
  packages       = local.base_pkgs
  firewall_rules = concat(["${local.private} tcp dport 8090 accept"], local.monitoring)
  files = {
    "/usr/local/sbin/platform-install-release" = local.install_release["workers"]
    "/etc/platform/release.env"                = local.release_env["workers"]
    "/etc/platform/workers.env"                = local.env_text["workers"]
  }
  commands = local.install_commands
}

# The router listens on 80/443 itself (router.service holds CAP_NET_BIND_SERVICE) behind the
# load balancer's TCP listeners, terminates TLS on 443 with certificates it orders over ACME
# (HTTP-01 on 80), and finds platform and workers by their private addresses. Its secrets
# (database URL, edge signing secret, CERT_ENCRYPTION_KEY, REDIS_URL) are systemd credentials
# from /etc/credstore (router.service), never in user data.
module "router" {
  source               = "../modules/leaseweb-host"
  name                 = local.host_common.name
  region               = local.host_common.region
  image_id             = local.host_common.image_id
  contract             = local.host_common.contract
  ssh_authorized_keys  = local.host_common.ssh_authorized_keys
  admin_cidrs          = local.host_common.admin_cidrs
  private_network_cidr = local.host_common.private_network_cidr
  user_data_base64     = local.host_common.user_data_base64

  role           = "router"
  instance_count = var.instances["router"].count
  instance_type  = var.instances["router"].type
  disk_gb        = var.instances["router"].disk_gb
  disk_type      = var.instances["router"].disk_type
  packages       = local.base_pkgs
  firewall_rules = concat([
    "tcp dport { 80, 443 } accept",
    "ip saddr { ${join(", ", concat([for a in leaseweb_public_cloud_load_balancer.main.ips : a.ip], [var.private_network_cidr]))} } tcp dport 9100 accept",
  ], local.monitoring)
  files = {
    "/usr/local/sbin/platform-install-release" = local.install_release["router"]
    "/etc/platform/release.env"                = local.release_env["router"]
    "/etc/platform/router.env" = join("", [for k, v in merge({
      TENANT_BASE_DOMAIN     = var.base_domain
      ROUTER_HTTP_LISTEN     = "0.0.0.0:80"
      ROUTER_HTTPS_LISTEN    = "0.0.0.0:443"
      ROUTER_OPERATOR_LISTEN = "0.0.0.0:9100"
      UPSTREAM_PLATFORM      = join(",", [for ip in module.platform.private_ips : "${ip}:8080"])
      UPSTREAM_WORKERS       = join(",", [for ip in module.workers.private_ips : "${ip}:8090"])
      ACME_ENABLED           = "true"
      ACME_DIRECTORY_URL     = var.acme_directory_url
      # Rate limits are shared in Redis; while it is unreachable each router limits alone
      # with rates and bursts divided by the number of routers.
      ROUTER_RATE_LIMIT_INSTANCES = tostring(var.instances["router"].count)
      }, var.acme_contact == "" ? {} : { ACME_CONTACT = var.acme_contact },
    var.acme_trusted_roots_file == "" ? {} : { ACME_TRUSTED_ROOTS_FILE = var.acme_trusted_roots_file }) : "${k}=${v}\n"])
  }
  commands = local.install_commands
}
