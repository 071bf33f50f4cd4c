variable "project" {
  description = "Short name used in every instance reference."
  type        = string
  default     = "donations"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.project))
    error_message = "project: 2-15 characters, lower-case letters, digits and '-'."
  }
}

variable "environment" {
  description = "Deployment stage."
  type        = string
  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

variable "region" {
  description = "Leaseweb public cloud region."
  type        = string
  default     = "eu-west-3"
  validation {
    condition     = contains(["eu-west-3", "us-east-1", "eu-central-1", "ap-southeast-1", "us-west-1", "eu-west-2", "ca-central-1", "ap-northeast-1"], var.region)
    error_message = "region must be a Leaseweb public cloud region (provider 1.31: eu-west-3, us-east-1, eu-central-1, ap-southeast-1, us-west-1, eu-west-2, ca-central-1, ap-northeast-1)."
  }
}

variable "image_id" {
  description = "Operating system image for every instance (Debian 12, like the hosts ops/systemd is verified on); list them with data.leaseweb_public_cloud_images or GET /publicCloud/v1/images."
  type        = string
  default     = "DEBIAN_12_64BIT"
}

variable "contract" {
  description = "Contract of every instance and the load balancer: HOURLY (term 0) or MONTHLY with a term in months."
  type = object({
    type              = string
    term              = number
    billing_frequency = number
  })
  default = { type = "HOURLY", term = 0, billing_frequency = 1 }
  validation {
    condition     = contains(["HOURLY", "MONTHLY"], var.contract.type) && contains([0, 1, 3, 6, 12, 24, 36], var.contract.term) && contains([0, 1, 3, 6, 12], var.contract.billing_frequency) && (var.contract.type == "MONTHLY" || var.contract.term == 0)
    error_message = "contract: type HOURLY (term 0) or MONTHLY; term one of 0,1,3,6,12,24,36; billing_frequency one of 0,1,3,6,12."
  }
}

variable "instances" {
  description = "Count, instance type and root disk (GiB) per role. postgres and redis: the first is the primary, the rest replicas."
  type = map(object({
    count     = number
    type      = string
    disk_gb   = number
    disk_type = string
  }))
  default = {
    router   = { count = 2, type = "lsw.c5a.large", disk_gb = 20, disk_type = "LOCAL" }
    platform = { count = 2, type = "lsw.m5a.large", disk_gb = 20, disk_type = "LOCAL" }
    workers  = { count = 1, type = "lsw.m5a.large", disk_gb = 20, disk_type = "LOCAL" }
    postgres = { count = 2, type = "lsw.m5a.xlarge", disk_gb = 200, disk_type = "CENTRAL" }
    redis    = { count = 2, type = "lsw.m5a.large", disk_gb = 20, disk_type = "CENTRAL" }
  }
  validation {
    condition     = length(setsubtract(["router", "platform", "workers", "postgres", "redis"], keys(var.instances))) == 0
    error_message = "instances needs router, platform, workers, postgres and redis."
  }
  validation {
    condition     = alltrue([for r in values(var.instances) : r.count >= 1 && r.count <= 10 && r.disk_gb >= 5 && r.disk_gb <= 1000 && contains(["LOCAL", "CENTRAL"], r.disk_type) && can(regex("^lsw\\.[a-z0-9]+\\.[a-z0-9]+$", r.type))])
    error_message = "Each role: 1-10 instances, an lsw.* type, 5-1000 GiB on LOCAL or CENTRAL storage."
  }
}

variable "base_domain" {
  description = "Base domain served (TENANT_BASE_DOMAIN); its zone must be in Leaseweb DNS under dns_domain."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.base_domain))
    error_message = "base_domain must be a lower-case DNS name."
  }
}

variable "dns_domain" {
  description = "The Leaseweb DNS domain (zone) holding base_domain: the base domain itself or a parent."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.dns_domain))
    error_message = "dns_domain must be a lower-case DNS name."
  }
}

variable "caa_issuers" {
  description = "Certificate authorities allowed to issue for the base domain (the router uses ACME)."
  type        = list(string)
  default     = ["letsencrypt.org"]
}

variable "release" {
  description = "Release bundle made by ops/systemd/bundle.sh (bin/, backup/, systemd/, docs/): version, HTTPS URL and SHA-256 of the tarball."
  type = object({
    version = string
    url     = string
    sha256  = string
  })
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$", var.release.version)) && startswith(var.release.url, "https://") && can(regex("^[0-9a-f]{64}$", var.release.sha256))
    error_message = "release: a version like 1.4.2, an https:// URL and a 64-hex-digit SHA-256."
  }
}

variable "ssh_authorized_keys" {
  description = "Public keys allowed to log in as the image's default user (cloud-init; the provider's ssh_key cannot be combined with user data)."
  type        = list(string)
  validation {
    condition     = length(var.ssh_authorized_keys) > 0 && alltrue([for k in var.ssh_authorized_keys : can(regex("^(ssh-ed25519|ecdsa-sha2-nistp[0-9]+|ssh-rsa) ", k))])
    error_message = "ssh_authorized_keys needs at least one OpenSSH public key."
  }
}

variable "admin_cidrs" {
  description = "Addresses allowed to SSH to the hosts (host firewalls)."
  type        = list(string)
  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrnetmask(c))]) && !contains(var.admin_cidrs, "0.0.0.0/0")
    error_message = "admin_cidrs: one or more IPv4 CIDR blocks, not 0.0.0.0/0."
  }
}

variable "private_network_cidr" {
  description = "Address block of the Leaseweb private network the instances join (has_private_network); hosts accept service ports only from it."
  type        = string
  default     = "10.0.0.0/8"
  validation {
    condition     = can(cidrnetmask(var.private_network_cidr))
    error_message = "private_network_cidr must be an IPv4 CIDR block."
  }
}

variable "monitoring_cidrs" {
  description = "Prometheus servers allowed to scrape the operator listeners (router 9100, platform 9180, workers 9190)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.monitoring_cidrs : can(cidrnetmask(c))])
    error_message = "monitoring_cidrs must be IPv4 CIDR blocks."
  }
}

variable "email_from" {
  description = "EMAIL_FROM for receipts and reports."
  type        = string
  validation {
    condition     = can(regex("@", var.email_from))
    error_message = "email_from must contain an e-mail address."
  }
}

variable "acme_directory_url" {
  description = "ACME directory the routers order certificates from: Let's Encrypt production, or its staging CA for non-production environments (then set acme_trusted_roots_file)."
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

variable "acme_trusted_roots_file" {
  description = "PEM file on the router hosts with the roots issued chains must verify to (ACME_TRUSTED_ROOTS_FILE); empty: the system's. Needed with a staging CA, whose roots no system trusts; the operator copies it there (README)."
  type        = string
  default     = ""
  validation {
    condition     = var.acme_trusted_roots_file == "" || startswith(var.acme_trusted_roots_file, "/")
    error_message = "acme_trusted_roots_file must be empty or an absolute path."
  }
}

variable "stripe_publishable_key" {
  description = "STRIPE_PUBLISHABLE_KEY (public)."
  type        = string
  default     = ""
}

variable "backup_s3" {
  description = "Where the database host uploads its hourly backups (S3-compatible, e.g. Leaseweb Object Storage): s3:// URI and endpoint URL; empty uri keeps them on the host only."
  type = object({
    uri      = string
    endpoint = string
  })
  default = { uri = "", endpoint = "" }
  validation {
    condition     = var.backup_s3.uri == "" || startswith(var.backup_s3.uri, "s3://")
    error_message = "backup_s3.uri must be empty or an s3:// URI."
  }
}

variable "user_data_base64" {
  description = "Hand the cloud-init document base64-encoded (as the public cloud API's launch call takes user data); set false if the provider encodes it itself."
  type        = bool
  default     = true
}

variable "load_balancer_type" {
  description = "Instance type of the load balancer."
  type        = string
  default     = "lsw.c5a.large"
  validation {
    condition     = can(regex("^lsw\\.[a-z0-9]+\\.[a-z0-9]+$", var.load_balancer_type))
    error_message = "load_balancer_type must be an lsw.* type."
  }
}
