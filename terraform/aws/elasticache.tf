# ElastiCache Redis: replication group across zones, TLS in transit, AUTH token, encrypted at
# rest. VALIDATE-ONLY against the moto emulator (moto answers 404 for the member cluster while
# creating the group), so the CI's moto apply leaves this file out: nothing outside it may
# refer to what it declares.

resource "aws_elasticache_subnet_group" "redis" {
  name       = "${local.name}-redis"
  subnet_ids = aws_subnet.data[*].id
}

resource "aws_cloudwatch_log_group" "redis_slow" {
  name              = "/elasticache/${local.name}/slow-log"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_elasticache_replication_group" "redis" {
  replication_group_id = "${local.name}-redis"
  description          = "${local.name}: sessions, cache, rate limits"
  engine               = "redis"
  engine_version       = var.redis_engine_version
  node_type            = var.redis_node_type
  num_cache_clusters   = var.redis_num_cache_clusters
  port                 = local.port.redis
  parameter_group_name = "default.redis7"

  subnet_group_name          = aws_elasticache_subnet_group.redis.name
  security_group_ids         = [aws_security_group.redis.id]
  automatic_failover_enabled = true
  multi_az_enabled           = true

  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.main.arn
  transit_encryption_enabled = true
  auth_token                 = var.redis_auth_token
  auth_token_update_strategy = "ROTATE"

  snapshot_retention_limit   = 7
  snapshot_window            = "02:30-03:30"
  maintenance_window         = "sun:05:30-sun:06:30"
  auto_minor_version_upgrade = true

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.redis_slow.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }
}

resource "aws_secretsmanager_secret_version" "redis_url" {
  secret_id     = aws_secretsmanager_secret.redis_url.id
  secret_string = "rediss://:${var.redis_auth_token}@${aws_elasticache_replication_group.redis.primary_endpoint_address}:${local.port.redis}"
}

resource "aws_cloudwatch_metric_alarm" "redis" {
  for_each = {
    cpu    = { metric = "EngineCPUUtilization", threshold = 80, text = "Redis engine CPU above 80% for 10 minutes" }
    memory = { metric = "DatabaseMemoryUsagePercentage", threshold = 80, text = "Redis memory above 80% for 10 minutes" }
  }
  alarm_name          = "${local.name}-redis-${each.key}"
  alarm_description   = each.value.text
  namespace           = "AWS/ElastiCache"
  metric_name         = each.value.metric
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 10
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  dimensions = {
    ReplicationGroupId = aws_elasticache_replication_group.redis.id
  }
}

output "redis_primary_endpoint" {
  description = "Redis primary endpoint (TLS, AUTH); the full URL is in the redis-url secret."
  value       = aws_elasticache_replication_group.redis.primary_endpoint_address
}
