# terraform apply -var-file=environments/staging.tfvars
# Same shape as production, smaller and cheaper: two zones, one NAT gateway, burstable
# database and cache, one task per service.
environment             = "staging"
region                  = "us-east-1"
availability_zone_count = 2
single_nat_gateway      = true
base_domain             = "staging.donations.example.org"
image_tag               = "v0.1.0"
email_from              = "Donations (staging) <no-reply@staging.donations.example.org>"
stripe_publishable_key  = ""
alarm_email             = ""

service_sizes = {
  router   = { cpu = 256, memory = 512, min_count = 1, max_count = 2 }
  platform = { cpu = 512, memory = 1024, min_count = 1, max_count = 3 }
  workers  = { cpu = 256, memory = 512, min_count = 1, max_count = 2 }
}

db_instance_class        = "db.t4g.medium"
db_multi_az              = false
db_allocated_storage     = 20
db_max_allocated_storage = 100
db_backup_retention_days = 7

redis_node_type          = "cache.t4g.small"
redis_num_cache_clusters = 2

log_retention_days  = 30
deletion_protection = false

# Let's Encrypt's staging CA: certificates no browser trusts, limits that testing cannot hit.
# The router cannot be given the staging roots on Fargate (no ACME_TRUSTED_ROOTS_FILE in the
# image), so it re-orders each name up to acme.name_budget (5 a week): see README.
acme_directory_url = "https://acme-staging-v02.api.letsencrypt.org/directory"
