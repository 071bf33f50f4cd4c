# CloudWatch alarms for what CloudWatch can see, mirroring the seeds' Prometheus alerts:
#   HighErrorRate     -> router 5xx share of requests (access-log metric filter)
#   SlowResponseTime  -> router p95 total_ms (access-log metric filter)
#   HighMemoryUsage   -> ECS memory utilisation per service
#   service down      -> NLB healthy router targets, running platform/workers tasks
#   database / Redis  -> RDS and ElastiCache (elasticache.tf) CPU, memory, storage
#   cron              -> dead-letter queue depth and the cron_failed rule (scheduler.tf)
# QueueBacklog, LowDonationSuccessRate and the cron last-success age come from the binaries'
# /metrics and stay in Prometheus.

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = aws_kms_key.main.arn
}

data "aws_iam_policy_document" "alarms_topic" {
  statement {
    sid       = "AlarmsAndRulesPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms_topic.json
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count     = var.alarm_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  metrics_namespace = "${var.project}/${var.environment}"
  alarm_actions     = [aws_sns_topic.alarms.arn]
}

# The router's access log: one JSON line per request with "target":"access", "status" and
# "total_ms" (docs/operations.md).
resource "aws_cloudwatch_log_metric_filter" "router" {
  for_each = {
    RouterRequests  = { pattern = "{ $.target = \"access\" }", value = "1" }
    Router5xx       = { pattern = "{ $.target = \"access\" && $.status >= 500 }", value = "1" }
    RouterLatencyMs = { pattern = "{ $.target = \"access\" }", value = "$.total_ms" }
  }
  name           = "${local.name}-${each.key}"
  log_group_name = module.task_router.log_group_name
  pattern        = each.value.pattern
  metric_transformation {
    name      = each.key
    namespace = local.metrics_namespace
    value     = each.value.value
    unit      = each.key == "RouterLatencyMs" ? "Milliseconds" : "Count"
  }
}

resource "aws_cloudwatch_metric_alarm" "router_error_rate" {
  alarm_name          = "${local.name}-router-5xx-rate"
  alarm_description   = "More than 5% of requests answered 5xx for 5 minutes (HighErrorRate)"
  comparison_operator = "GreaterThanThreshold"
  threshold           = 5
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "rate"
    expression  = "IF(requests > 0, 100 * errors / requests, 0)"
    label       = "5xx percent"
    return_data = true
  }
  metric_query {
    id = "errors"
    metric {
      namespace   = local.metrics_namespace
      metric_name = "Router5xx"
      period      = 60
      stat        = "Sum"
    }
  }
  metric_query {
    id = "requests"
    metric {
      namespace   = local.metrics_namespace
      metric_name = "RouterRequests"
      period      = 60
      stat        = "Sum"
    }
  }
  depends_on = [aws_cloudwatch_log_metric_filter.router]
}

resource "aws_cloudwatch_metric_alarm" "router_latency" {
  alarm_name          = "${local.name}-router-p95-latency"
  alarm_description   = "p95 request time above 1 s for 5 minutes (SlowResponseTime)"
  namespace           = local.metrics_namespace
  metric_name         = "RouterLatencyMs"
  extended_statistic  = "p95"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = 1000
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  depends_on          = [aws_cloudwatch_log_metric_filter.router]
}

resource "aws_cloudwatch_metric_alarm" "router_no_healthy_targets" {
  for_each            = local.router_listeners
  alarm_name          = "${local.name}-router-${each.key}-no-healthy-targets"
  alarm_description   = "No healthy router behind NLB port ${each.value.listen}: the site is down"
  namespace           = "AWS/NetworkELB"
  metric_name         = "HealthyHostCount"
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = var.services_enabled ? local.alarm_actions : []
  ok_actions          = local.alarm_actions
  dimensions = {
    LoadBalancer = aws_lb.public.arn_suffix
    TargetGroup  = aws_lb_target_group.router[each.key].arn_suffix
  }
}

resource "aws_cloudwatch_metric_alarm" "service_memory" {
  for_each            = aws_ecs_service.app
  alarm_name          = "${local.name}-${each.key}-memory"
  alarm_description   = "${each.key}: average memory above 85% for 10 minutes (HighMemoryUsage)"
  namespace           = "AWS/ECS"
  metric_name         = "MemoryUtilization"
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 10
  comparison_operator = "GreaterThanThreshold"
  threshold           = 85
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  dimensions = {
    ClusterName = aws_ecs_cluster.main.name
    ServiceName = each.value.name
  }
}

resource "aws_cloudwatch_metric_alarm" "service_down" {
  for_each            = { for k, v in aws_ecs_service.app : k => v if k != "router" }
  alarm_name          = "${local.name}-${each.key}-no-running-tasks"
  alarm_description   = "${each.key}: no running task for 2 minutes"
  namespace           = "ECS/ContainerInsights"
  metric_name         = "RunningTaskCount"
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = var.services_enabled ? local.alarm_actions : []
  ok_actions          = local.alarm_actions
  dimensions = {
    ClusterName = aws_ecs_cluster.main.name
    ServiceName = each.value.name
  }
}

locals {
  rds_alarms = {
    cpu = {
      metric = "CPUUtilization", op = "GreaterThanThreshold", threshold = 80, periods = 15
      text   = "database CPU above 80% for 15 minutes"
    }
    storage = {
      metric = "FreeStorageSpace", op = "LessThanThreshold", threshold = 10 * 1024 * 1024 * 1024, periods = 5
      text   = "database free storage below 10 GiB (autoscaling stops at db_max_allocated_storage)"
    }
    memory = {
      metric = "FreeableMemory", op = "LessThanThreshold", threshold = 256 * 1024 * 1024, periods = 10
      text   = "database freeable memory below 256 MiB"
    }
    connections = {
      metric = "DatabaseConnections", op = "GreaterThanThreshold", threshold = 400, periods = 5
      text   = "more than 400 database connections (pools: 10 per process by default)"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "rds" {
  for_each            = local.rds_alarms
  alarm_name          = "${local.name}-postgres-${each.key}"
  alarm_description   = each.value.text
  namespace           = "AWS/RDS"
  metric_name         = each.value.metric
  statistic           = "Average"
  period              = 60
  evaluation_periods  = each.value.periods
  comparison_operator = each.value.op
  threshold           = each.value.threshold
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  dimensions = {
    DBInstanceIdentifier = aws_db_instance.main.identifier
  }
}

resource "aws_cloudwatch_metric_alarm" "cron_dead_letters" {
  alarm_name          = "${local.name}-cron-dead-letters"
  alarm_description   = "EventBridge Scheduler could not start a cron task after its retries (see the DLQ messages)"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  dimensions = {
    QueueName = aws_sqs_queue.cron_dlq.name
  }
}
