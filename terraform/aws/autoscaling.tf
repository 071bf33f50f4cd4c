# Target tracking on CPU and memory per service (an NLB and Cloud Map give no request-count
# metric). VALIDATE-ONLY against the moto emulator (registering the scalable target hangs
# there), so the CI's moto apply leaves this file out: nothing outside it may refer to what it
# declares.

resource "aws_appautoscaling_target" "service" {
  for_each           = aws_ecs_service.app
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.main.name}/${each.value.name}"
  min_capacity       = var.services_enabled ? var.service_sizes[each.key].min_count : 0
  max_capacity       = var.services_enabled ? var.service_sizes[each.key].max_count : 0
}

locals {
  scaling_policies = merge([
    for svc in keys(aws_ecs_service.app) : {
      "${svc}-cpu"    = { service = svc, metric = "ECSServiceAverageCPUUtilization", target = var.autoscaling_targets.cpu }
      "${svc}-memory" = { service = svc, metric = "ECSServiceAverageMemoryUtilization", target = var.autoscaling_targets.memory }
    }
  ]...)
}

resource "aws_appautoscaling_policy" "service" {
  for_each           = local.scaling_policies
  name               = "${local.name}-${each.key}"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.service[each.value.service].service_namespace
  scalable_dimension = aws_appautoscaling_target.service[each.value.service].scalable_dimension
  resource_id        = aws_appautoscaling_target.service[each.value.service].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = each.value.target
    scale_out_cooldown = 60
    scale_in_cooldown  = 300
    predefined_metric_specification {
      predefined_metric_type = each.value.metric
    }
  }
}
