# The four cron jobs as EventBridge Scheduler schedules, each starting a one-shot Fargate task
# running `workers trigger <job>`. Scheduler retries when it cannot start the task (API errors,
# throttling) within the event age, then drops the event into the dead-letter queue. A task that
# starts and exits non-zero is reported by the rule at the end of this file.

resource "aws_scheduler_schedule_group" "cron" {
  name = "${local.name}-cron"
}

resource "aws_sqs_queue" "cron_dlq" {
  name                              = "${local.name}-cron-dlq"
  message_retention_seconds         = 1209600 # 14 days, the maximum
  kms_master_key_id                 = aws_kms_key.main.arn
  kms_data_key_reuse_period_seconds = 3600
}

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${local.name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "RunCronTask"
    actions   = ["ecs:RunTask"]
    resources = ["${module.task_cron.task_definition_arn_without_revision}:*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.main.arn]
    }
  }
  statement {
    sid       = "TagCronTask"
    actions   = ["ecs:TagResource"]
    resources = ["arn:${data.aws_partition.current.partition}:ecs:${var.region}:${data.aws_caller_identity.current.account_id}:task/${aws_ecs_cluster.main.name}/*"]
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }
  statement {
    sid       = "PassCronRoles"
    actions   = ["iam:PassRole"]
    resources = [module.task_cron.execution_role_arn, module.task_cron.task_role_arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.cron_dlq.arn]
  }
  statement {
    sid       = "ScheduleInputDecryption"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
  }
  statement {
    sid       = "DeadLetterEncryption"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sqs.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "run-cron-tasks"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}

resource "aws_scheduler_schedule" "cron" {
  for_each                     = local.cron_jobs
  name                         = each.key
  group_name                   = aws_scheduler_schedule_group.cron.name
  description                  = "workers trigger ${each.key}"
  schedule_expression          = each.value.expression
  schedule_expression_timezone = "UTC"
  kms_key_arn                  = aws_kms_key.main.arn
  state                        = var.services_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_ecs_cluster.main.arn
    role_arn = aws_iam_role.scheduler.arn
    input = jsonencode({
      containerOverrides = [{ name = "workers", command = ["trigger", each.key] }]
    })

    ecs_parameters {
      task_definition_arn     = module.task_cron.task_definition_arn
      launch_type             = "FARGATE"
      task_count              = 1
      group                   = "cron-${each.key}"
      enable_ecs_managed_tags = true
      propagate_tags          = "TASK_DEFINITION"

      network_configuration {
        subnets          = aws_subnet.private[*].id
        security_groups  = [aws_security_group.workers.id]
        assign_public_ip = false
      }
    }

    # Give up before the next run is due (the job covers "everything due now" anyway).
    retry_policy {
      maximum_event_age_in_seconds = each.value.max_event_age
      maximum_retry_attempts       = 3
    }

    dead_letter_config {
      arn = aws_sqs_queue.cron_dlq.arn
    }
  }
}

# A cron task that ran and failed: exit 1 (job failed) or 64 (bad configuration); exit 0 (done)
# and 3 (already running elsewhere, nothing done) are fine. Tasks that never started (image
# pull, secrets) stop with TaskFailedToStart.
resource "aws_cloudwatch_event_rule" "cron_failed" {
  name        = "${local.name}-cron-failed"
  description = "workers trigger <job> exited with a failure code"
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail = {
      clusterArn = [aws_ecs_cluster.main.arn]
      group      = [{ prefix = "cron-" }]
      lastStatus = ["STOPPED"]
      "$or" = [
        { containers = { exitCode = [{ "anything-but" = [0, 3] }] } },
        { stopCode = ["TaskFailedToStart"] },
      ]
    }
  })
}

resource "aws_cloudwatch_event_target" "cron_failed" {
  rule = aws_cloudwatch_event_rule.cron_failed.name
  arn  = aws_sns_topic.alarms.arn
  input_transformer {
    input_paths = {
      group  = "$.detail.group"
      reason = "$.detail.stoppedReason"
      task   = "$.detail.taskArn"
    }
    input_template = "\"Cron task <group> failed (<reason>): <task>\""
  }
}
