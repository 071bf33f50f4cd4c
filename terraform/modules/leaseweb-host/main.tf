# Instances of one role on the Leaseweb public cloud, each in the account's private network,
# with a cloud-init document that sets the host firewall (nftables: the provider has no
# firewall resource), writes the role's files and runs its commands.

terraform {
  required_version = ">= 1.11.0"
  required_providers {
    leaseweb = {
      source  = "leaseweb/leaseweb"
      version = "~> 1.31.0"
    }
  }
}

locals {
  prefix_len = split("/", var.private_network_cidr)[1]
  net_base   = cidrhost(var.private_network_cidr, 0)

  nftables = <<-EOT
    flush ruleset
    table inet filter {
      chain input {
        type filter hook input priority 0; policy drop;
        iif lo accept
        ct state established,related accept
        ct state invalid drop
        ip protocol icmp accept
        ip6 nexthdr ipv6-icmp accept
        ip saddr { ${join(", ", var.admin_cidrs)} } tcp dport 22 accept
    %{for rule in var.firewall_rules~}
        ${rule}
    %{endfor~}
      }
      chain forward {
        type filter hook forward priority 0; policy drop;
      }
    }
  EOT

  documents = [for i in range(var.instance_count) : templatefile("${path.module}/cloud-init.yaml.tftpl", {
    role                = "${var.role} ${i + 1}"
    name                = var.name
    packages            = var.packages
    ssh_authorized_keys = var.ssh_authorized_keys
    nftables            = local.nftables
    files               = var.files
    commands            = var.commands
  })]
}

resource "leaseweb_public_cloud_instance" "this" {
  count = var.instance_count

  region                 = var.region
  type                   = var.instance_type
  reference              = "${var.name}-${var.role}-${count.index + 1}"
  root_disk_size         = var.disk_gb
  root_disk_storage_type = var.disk_type
  has_private_network    = true
  image = {
    id = var.image_id
  }
  contract = {
    type              = var.contract.type
    term              = var.contract.term
    billing_frequency = var.contract.billing_frequency
  }
  user_data = var.user_data_base64 ? base64encode(local.documents[count.index]) : local.documents[count.index]
}
