output "nlb_dns_name" {
  description = "Public NLB name; the apex, *.base and admin records alias to it."
  value       = aws_lb.public.dns_name
}

output "name_servers" {
  description = "Name servers of the hosted zone created here (delegate base_domain to them); empty when an existing zone was given."
  value       = var.route53_zone_id == "" ? aws_route53_zone.main[0].name_servers : []
}

output "ecr_repositories" {
  description = "Push the release images here, tagged with image_tag."
  value       = { for k, r in aws_ecr_repository.app : k => r.repository_url }
}

output "ecs_cluster" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.main.name
}

output "operator_secrets" {
  description = "Secrets the operator fills once: aws secretsmanager put-secret-value --secret-id <arn> --secret-string <value>."
  value       = { for k, s in aws_secretsmanager_secret.external : upper(k) => s.arn }
}

output "run_task" {
  description = "Commands for the one-shot tasks: migrate (platform migrate up) and db-roles (login roles and their passwords)."
  value = { for name, family in {
    migrate  = module.task_migrate.family
    db_roles = module.task_db_roles.family
    } : name => join(" ", [
      "aws ecs run-task --cluster ${aws_ecs_cluster.main.name} --launch-type FARGATE",
      "--task-definition ${family}",
      "--network-configuration 'awsvpcConfiguration={subnets=[${join(",", aws_subnet.private[*].id)}],securityGroups=[${aws_security_group.migrate.id}],assignPublicIp=DISABLED}'",
  ]) }
}

output "database_endpoint" {
  description = "PostgreSQL endpoint (TLS required)."
  value       = "${aws_db_instance.main.address}:${aws_db_instance.main.port}"
}

output "service_discovery_namespace" {
  description = "Private DNS namespace the router resolves platform and workers in."
  value       = local.discovery_namespace
}

output "cron_schedules" {
  description = "EventBridge Scheduler schedules (group/name => expression, UTC)."
  value       = { for k, s in aws_scheduler_schedule.cron : "${s.group_name}/${k}" => s.schedule_expression }
}

output "cron_dead_letter_queue" {
  description = "Scheduler events that could not start their task after retries."
  value       = aws_sqs_queue.cron_dlq.url
}

output "alarm_topic_arn" {
  description = "SNS topic every alarm and the cron-failure rule publish to; subscribe on-call here."
  value       = aws_sns_topic.alarms.arn
}

output "log_groups" {
  description = "CloudWatch log groups of the services and tasks."
  value = {
    router   = module.task_router.log_group_name
    platform = module.task_platform.log_group_name
    workers  = module.task_workers.log_group_name
    cron     = module.task_cron.log_group_name
    migrate  = module.task_migrate.log_group_name
    db_roles = module.task_db_roles.log_group_name
  }
}
