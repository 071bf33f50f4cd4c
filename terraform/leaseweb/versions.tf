terraform {
  required_version = ">= 1.11.0"

  required_providers {
    # The schema reference this tree is checked against (../shared/reference/leaseweb-provider)
    # was extracted from v1.31.0; move both together.
    leaseweb = {
      source  = "leaseweb/leaseweb"
      version = "~> 1.31.0"
    }
  }
}

# The API token comes from LEASEWEB_TOKEN in the environment, never from a file in the repo.
provider "leaseweb" {}
