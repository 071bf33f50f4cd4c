variable "family" {
  description = "Task definition family; also names the log group (/ecs/<family>) and the two roles."
  type        = string
  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,50}$", var.family))
    error_message = "family: letters, digits, - and _, at most 50 characters (role names add a suffix)."
  }
}

variable "container_name" {
  description = "Name of the single container (used by container overrides and load balancers)."
  type        = string
}

variable "image" {
  description = "Container image reference (repository:tag or @digest)."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ARN of the ECR repository the image comes from (the execution role may pull from it only); null for a public image."
  type        = string
  default     = null
}

variable "command" {
  description = "Arguments after the image's entrypoint, e.g. [\"serve\"]."
  type        = list(string)
}

variable "cpu" {
  description = "Fargate CPU units (256 = 0.25 vCPU)."
  type        = number
  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.cpu)
    error_message = "cpu must be a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "memory" {
  description = "Fargate memory in MiB; must fit the CPU size (512 MiB to 8x the vCPUs in GiB)."
  type        = number
  validation {
    condition     = var.memory >= 512 && var.memory <= 122880
    error_message = "memory must be between 512 and 122880 MiB."
  }
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64 (Graviton, cheaper per vCPU; the images must be built for it)."
  type        = string
  default     = "X86_64"
  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "ports" {
  description = "Container ports to expose (awsvpc: the same port on the task's address)."
  type        = list(number)
  default     = []
}

variable "environment" {
  description = "Plain, non-secret environment variables."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Environment variable name => Secrets Manager ARN (optionally \"<arn>:<json key>::\"). Injected by ECS at start, never stored in the task definition."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for v in values(var.secrets) : can(regex("^arn:[^:]+:secretsmanager:", v))])
    error_message = "Every secret must be a Secrets Manager ARN."
  }
}

variable "stop_timeout" {
  description = "Seconds between SIGTERM and SIGKILL (Fargate allows up to 120); keep it above the binary's own drain time."
  type        = number
  default     = 45
  validation {
    condition     = var.stop_timeout >= 2 && var.stop_timeout <= 120
    error_message = "stop_timeout must be 2 to 120 seconds."
  }
}

variable "health_check_command" {
  description = "Container health check command (e.g. [\"CMD\", \"/usr/local/bin/platform\", \"healthcheck\"]); null for none."
  type        = list(string)
  default     = null
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention for this task's log group."
  type        = number
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key that encrypts the log group and the secrets."
  type        = string
}
