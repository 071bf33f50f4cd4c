variable "name" {
  description = "Deployment name (project-environment), prefixed to each instance reference."
  type        = string
}

variable "role" {
  description = "Role of these instances: router, platform, workers, postgres, redis (with primary/replica suffixes)."
  type        = string
}

variable "instance_count" {
  description = "How many instances of this role."
  type        = number
  validation {
    condition     = var.instance_count >= 0 && var.instance_count <= 10
    error_message = "instance_count must be 0-10."
  }
}

variable "instance_type" {
  description = "Leaseweb instance type (lsw.*)."
  type        = string
}

variable "disk_gb" {
  description = "Root disk size in GiB."
  type        = number
}

variable "disk_type" {
  description = "LOCAL (on the hypervisor) or CENTRAL (network storage, survives a hypervisor loss)."
  type        = string
}

variable "region" {
  description = "Leaseweb region."
  type        = string
}

variable "image_id" {
  description = "Operating system image."
  type        = string
}

variable "contract" {
  description = "Contract type, term and billing frequency."
  type = object({
    type              = string
    term              = number
    billing_frequency = number
  })
}

variable "ssh_authorized_keys" {
  description = "OpenSSH public keys for the default user."
  type        = list(string)
}

variable "admin_cidrs" {
  description = "Addresses allowed to SSH in."
  type        = list(string)
}

variable "private_network_cidr" {
  description = "The private network's address block (used to find each instance's private address)."
  type        = string
}

variable "firewall_rules" {
  description = "nftables input rules of this role, beyond loopback, replies, ICMP and SSH."
  type        = list(string)
}

variable "packages" {
  description = "Debian packages cloud-init installs."
  type        = list(string)
}

variable "files" {
  description = "Path => content written by cloud-init (files under /etc/credstore/ get mode 0600, others 0644)."
  type        = map(string)
  default     = {}
}

variable "commands" {
  description = "Commands cloud-init runs at first boot, in order, each as an argument list."
  type        = list(list(string))
  default     = []
}

variable "user_data_base64" {
  description = "Base64-encode the cloud-init document."
  type        = bool
}
