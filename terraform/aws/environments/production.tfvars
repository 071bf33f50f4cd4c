# terraform apply -var-file=environments/production.tfvars
# Secrets never go here: TF_VAR_redis_auth_token comes from the environment, the rest from
# Secrets Manager (README).
environment             = "production"
region                  = "us-east-1"
availability_zone_count = 3
single_nat_gateway      = false
base_domain             = "donations.example.org"
image_tag               = "v0.1.0"
email_from              = "Donations <no-reply@donations.example.org>"
stripe_publishable_key  = ""
alarm_email             = "oncall@example.org"

# Seeds' sizing: platform 1 vCPU / 2 GiB x3-10, db.r6g.large Multi-AZ, cache.r6g.large x2.
service_sizes = {
  router   = { cpu = 512, memory = 1024, min_count = 2, max_count = 6 }
  platform = { cpu = 1024, memory = 2048, min_count = 3, max_count = 10 }
  workers  = { cpu = 512, memory = 1024, min_count = 2, max_count = 4 }
}

db_instance_class        = "db.r6g.large"
db_multi_az              = true
db_allocated_storage     = 100
db_max_allocated_storage = 500
db_backup_retention_days = 30

redis_node_type          = "cache.r6g.large"
redis_num_cache_clusters = 2

log_retention_days  = 365
deletion_protection = true

# Let's Encrypt production (the default directory); the CA mails expiry warnings here.
acme_contact = "mailto:oncall@example.org"
