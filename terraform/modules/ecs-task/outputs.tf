output "task_definition_arn" {
  description = "ARN (with revision) of the task definition."
  value       = aws_ecs_task_definition.this.arn
}

output "task_definition_arn_without_revision" {
  description = "ARN of the family without a revision: RunTask then uses the latest ACTIVE revision."
  value       = aws_ecs_task_definition.this.arn_without_revision
}

output "family" {
  description = "Task definition family."
  value       = aws_ecs_task_definition.this.family
}

output "execution_role_arn" {
  description = "Execution role (pull, secrets, logs)."
  value       = aws_iam_role.execution.arn
}

output "task_role_arn" {
  description = "Task role (no permissions)."
  value       = aws_iam_role.task.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the task."
  value       = aws_cloudwatch_log_group.this.name
}
