# terraform apply -var-file=environments/production.tfvars   (LEASEWEB_TOKEN in the environment)
environment = "production"
region      = "eu-west-3"
base_domain = "donations.example.org"
dns_domain  = "donations.example.org"
email_from  = "Donations <no-reply@donations.example.org>"

release = {
  version = "0.1.0"
  url     = "https://releases.example.org/platform-0.1.0.tar.gz"
  sha256  = "0000000000000000000000000000000000000000000000000000000000000000"
}

ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyReplaceMe operator@example.org"]
admin_cidrs         = ["192.0.2.0/28"]
monitoring_cidrs    = []

# The seeds' Leaseweb sizing as the start: two app servers, a database with one replica, a
# cache. Here the app tier is split by binary, and every stateful role has a standby.
instances = {
  router   = { count = 2, type = "lsw.c5a.large", disk_gb = 20, disk_type = "LOCAL" }
  platform = { count = 2, type = "lsw.m5a.large", disk_gb = 20, disk_type = "LOCAL" }
  workers  = { count = 1, type = "lsw.m5a.large", disk_gb = 20, disk_type = "LOCAL" }
  postgres = { count = 2, type = "lsw.m5a.xlarge", disk_gb = 200, disk_type = "CENTRAL" }
  redis    = { count = 2, type = "lsw.m5a.large", disk_gb = 20, disk_type = "CENTRAL" }
}
contract = { type = "MONTHLY", term = 12, billing_frequency = 1 }

backup_s3 = { uri = "s3://example-donations-backups/production", endpoint = "https://s3.eu-west-3.example-object-storage.net" }

# Let's Encrypt production (the default directory); the CA mails expiry warnings here.
acme_contact = "mailto:oncall@example.org"
