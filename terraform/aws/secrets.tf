# Every secret the binaries read lives in Secrets Manager and reaches a container only as an
# ECS secret (never as a plain environment value or in the task definition).
#
# Generated here, with the value never stored in Terraform state (ephemeral random password +
# write-only secret version): the database passwords, EDGE_SIGNING_SECRET, CRON_SECRET and the
# router's CERT_ENCRYPTION_KEY.
# Supplied by the operator after the first apply (aws secretsmanager put-secret-value, see
# README): STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, SMTP_URL. REDIS_URL is written by
# elasticache.tf once the replication group exists.

locals {
  # Login roles of ops/dev/login-roles.sql, one per service, plus the owner (RDS master user).
  db_logins = {
    owner    = var.db_owner_username
    platform = "platform_web"
    router   = "platform_router"
    workers  = "platform_workers"
  }
  external_secrets = {
    stripe_secret_key     = "STRIPE_SECRET_KEY (sk_live_... or rk_live_...)"
    stripe_webhook_secret = "STRIPE_WEBHOOK_SECRET (whsec_...; two comma-separated while rolling)"
    smtp_url              = "SMTP_URL (smtp+starttls://user:password@relay:587 or smtps://...:465)"
  }
}

ephemeral "aws_secretsmanager_random_password" "db" {
  for_each            = local.db_logins
  password_length     = 40
  exclude_punctuation = true # the password goes into a URL unescaped
}

ephemeral "aws_secretsmanager_random_password" "edge_signing" {
  password_length     = 64
  exclude_punctuation = true
}

# Input of the TLS sealing key below (hashed into 32 bytes there).
ephemeral "aws_secretsmanager_random_password" "cert_key" {
  password_length     = 64
  exclude_punctuation = true
}

ephemeral "aws_secretsmanager_random_password" "cron" {
  password_length     = 48
  exclude_punctuation = true
}

# Database credentials as JSON: ECS injects the "url" key as DATABASE_URL (or
# DATABASE_MIGRATION_URL), the db-roles task reads "password".
resource "aws_secretsmanager_secret" "db" {
  #checkov:skip=CKV2_AWS_57:No rotation Lambda: generated values rotate by bumping secret_versions, operator-supplied ones (Stripe, SMTP) by put-secret-value (README, "Rotating secrets").
  for_each                = local.db_logins
  name                    = "${local.name}/database/${each.key}"
  description             = "PostgreSQL login ${each.value}: {username, password, url}"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "db" {
  for_each  = local.db_logins
  secret_id = aws_secretsmanager_secret.db[each.key].id
  secret_string_wo = jsonencode({
    username = each.value
    password = ephemeral.aws_secretsmanager_random_password.db[each.key].random_password
    url = format("postgres://%s:%s@%s:%d/%s?sslmode=require", each.value,
      ephemeral.aws_secretsmanager_random_password.db[each.key].random_password,
    aws_db_instance.main.address, aws_db_instance.main.port, var.db_name)
  })
  secret_string_wo_version = var.secret_versions.database
}

resource "aws_secretsmanager_secret" "edge_signing" {
  #checkov:skip=CKV2_AWS_57:No rotation Lambda: generated values rotate by bumping secret_versions, operator-supplied ones (Stripe, SMTP) by put-secret-value (README, "Rotating secrets").
  name                    = "${local.name}/edge-signing-secret"
  description             = "EDGE_SIGNING_SECRET shared by router (signs) and platform (verifies)"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "edge_signing" {
  secret_id                = aws_secretsmanager_secret.edge_signing.id
  secret_string_wo         = ephemeral.aws_secretsmanager_random_password.edge_signing.random_password
  secret_string_wo_version = var.secret_versions.edge_signing
}

resource "aws_secretsmanager_secret" "cron" {
  #checkov:skip=CKV2_AWS_57:No rotation Lambda: generated values rotate by bumping secret_versions, operator-supplied ones (Stripe, SMTP) by put-secret-value (README, "Rotating secrets").
  name                    = "${local.name}/cron-secret"
  description             = "CRON_SECRET: bearer token for POST /api/cron/<job>"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "cron" {
  secret_id                = aws_secretsmanager_secret.cron.id
  secret_string_wo         = ephemeral.aws_secretsmanager_random_password.cron.random_password
  secret_string_wo_version = var.secret_versions.cron
}

resource "aws_secretsmanager_secret" "redis_url" {
  #checkov:skip=CKV2_AWS_57:No rotation Lambda: generated values rotate by bumping secret_versions, operator-supplied ones (Stripe, SMTP) by put-secret-value (README, "Rotating secrets").
  name                    = "${local.name}/redis-url"
  description             = "REDIS_URL: rediss://:<auth token>@<primary endpoint>:6379"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret" "external" {
  #checkov:skip=CKV2_AWS_57:No rotation Lambda: generated values rotate by bumping secret_versions, operator-supplied ones (Stripe, SMTP) by put-secret-value (README, "Rotating secrets").
  for_each                = local.external_secrets
  name                    = "${local.name}/${replace(each.key, "_", "-")}"
  description             = "Set by the operator: ${each.value}"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = 7
}

# CERT_ENCRYPTION_KEY: AES-256-GCM key the routers seal certificate private keys, ACME
# accounts and session-ticket keys with in PostgreSQL (docs/operations.md, TLS). The router
# takes 32 bytes as 64 hex digits; SHA-256 of a 64-character random password is exactly that
# and stays ephemeral. Written once: a new key cannot open what the old one sealed (every
# certificate would be re-ordered), so it has no entry in secret_versions.
resource "aws_secretsmanager_secret" "cert_encryption_key" {
  #checkov:skip=CKV2_AWS_57:Not rotatable by replacement: certificates sealed under the old key would no longer open; rotating means re-sealing every row (docs/operations.md, TLS).
  name                    = "${local.name}/cert-encryption-key"
  description             = "CERT_ENCRYPTION_KEY: the routers' TLS sealing key (64 hex digits), the same on every router"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = 30
}

resource "aws_secretsmanager_secret_version" "cert_encryption_key" {
  secret_id                = aws_secretsmanager_secret.cert_encryption_key.id
  secret_string_wo         = sha256(ephemeral.aws_secretsmanager_random_password.cert_key.random_password)
  secret_string_wo_version = 1
}
