# terraform apply -var-file=environments/staging.tfvars   (LEASEWEB_TOKEN in the environment)
environment = "staging"
region      = "eu-west-3"
base_domain = "staging.donations.example.org"
dns_domain  = "donations.example.org"
email_from  = "Donations (staging) <no-reply@staging.donations.example.org>"

release = {
  version = "0.1.0"
  url     = "https://releases.example.org/platform-0.1.0.tar.gz"
  sha256  = "0000000000000000000000000000000000000000000000000000000000000000"
}

ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyReplaceMe operator@example.org"]
admin_cidrs         = ["192.0.2.0/28"]

# One of each; the database and cache still get their standby so failover can be rehearsed.
instances = {
  router   = { count = 1, type = "lsw.c5a.large", disk_gb = 20, disk_type = "LOCAL" }
  platform = { count = 1, type = "lsw.m5a.large", disk_gb = 20, disk_type = "LOCAL" }
  workers  = { count = 1, type = "lsw.c5a.large", disk_gb = 20, disk_type = "LOCAL" }
  postgres = { count = 2, type = "lsw.m5a.large", disk_gb = 50, disk_type = "CENTRAL" }
  redis    = { count = 2, type = "lsw.c5a.large", disk_gb = 20, disk_type = "CENTRAL" }
}
contract = { type = "HOURLY", term = 0, billing_frequency = 1 }

# Let's Encrypt's staging CA; its two roots go to this file on each router host (README).
acme_directory_url      = "https://acme-staging-v02.api.letsencrypt.org/directory"
acme_trusted_roots_file = "/etc/platform/acme-staging-roots.pem"
