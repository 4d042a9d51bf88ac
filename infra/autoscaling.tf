# API: target tracking on CPU and on requests per task. Worker: step scaling on the queue
# backlog, to and from zero.

resource "aws_appautoscaling_target" "api" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.api.name}"
  min_capacity       = var.api_min_count
  max_capacity       = var.api_max_count
}

resource "aws_appautoscaling_policy" "api_cpu" {
  name               = "${local.name}-api-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.api.service_namespace
  scalable_dimension = aws_appautoscaling_target.api.scalable_dimension
  resource_id        = aws_appautoscaling_target.api.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = 60
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "api_requests" {
  name               = "${local.name}-api-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.api.service_namespace
  scalable_dimension = aws_appautoscaling_target.api.scalable_dimension
  resource_id        = aws_appautoscaling_target.api.resource_id

  target_tracking_scaling_policy_configuration {
    # NOTE: requests per task per minute; API calls are small (signing, DB lookups), so CPU
    # usually leads and this one catches I/O-bound load that CPU does not show.
    target_value       = 1000
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.this.arn_suffix}"
    }
  }
}

resource "aws_appautoscaling_target" "worker" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.worker.name}"
  min_capacity       = var.worker_min_count
  max_capacity       = var.worker_max_count
}

# NOTE: why step scaling and not target tracking on backlog-per-task: with zero running tasks
# "backlog / tasks" is undefined, so a target-tracking policy could never start the first
# worker. Instead one ExactCapacity step per task count: a backlog (visible + in flight) in
# [(n-1)*B, n*B) asks for exactly n tasks (B = worker_backlog_per_task), i.e. desired =
# ceil(backlog / B). In-flight messages count, so busy tasks are not scaled away.
resource "aws_appautoscaling_policy" "worker_backlog" {
  name               = "${local.name}-worker-backlog"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension
  resource_id        = aws_appautoscaling_target.worker.resource_id

  step_scaling_policy_configuration {
    adjustment_type         = "ExactCapacity"
    cooldown                = 60
    metric_aggregation_type = "Maximum"

    dynamic "step_adjustment" {
      for_each = range(1, var.worker_max_count + 1)
      content {
        metric_interval_lower_bound = (step_adjustment.value - 1) * var.worker_backlog_per_task
        metric_interval_upper_bound = step_adjustment.value == var.worker_max_count ? null : step_adjustment.value * var.worker_backlog_per_task
        scaling_adjustment          = step_adjustment.value
      }
    }
  }
}

# NOTE: with nothing queued or in flight for 15 minutes, go down to worker_min_count (0 lets
# the service sleep; the backlog alarm wakes it within a few minutes of the next upload).
resource "aws_appautoscaling_policy" "worker_idle" {
  name               = "${local.name}-worker-idle"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension
  resource_id        = aws_appautoscaling_target.worker.resource_id

  step_scaling_policy_configuration {
    adjustment_type         = "ExactCapacity"
    cooldown                = 300
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_upper_bound = 0
      scaling_adjustment          = var.worker_min_count
    }
  }
}

locals {
  # Visible + in-flight messages on the images queue: the work not yet done.
  backlog_queries = {
    visible  = "ApproximateNumberOfMessagesVisible"
    inflight = "ApproximateNumberOfMessagesNotVisible"
  }
}

resource "aws_cloudwatch_metric_alarm" "worker_backlog" {
  alarm_name          = "${local.name}-worker-backlog"
  alarm_description   = "Messages waiting or in flight on the images queue: scale workers to ceil(backlog / ${var.worker_backlog_per_task})."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.worker_backlog.arn]

  metric_query {
    id          = "backlog"
    expression  = "visible + inflight"
    label       = "Backlog"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.backlog_queries
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/SQS"
        metric_name = metric_query.value
        dimensions  = { QueueName = aws_sqs_queue.images.name }
        period      = 60
        stat        = "Maximum"
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "worker_idle" {
  alarm_name          = "${local.name}-worker-idle"
  alarm_description   = "Nothing waiting or in flight on the images queue for 15 minutes: scale workers to the minimum."
  comparison_operator = "LessThanThreshold"
  threshold           = 0.5
  evaluation_periods  = 15
  datapoints_to_alarm = 15
  # NOTE: SQS stops publishing metrics for a queue idle for hours; no data means idle.
  treat_missing_data = "breaching"
  alarm_actions      = [aws_appautoscaling_policy.worker_idle.arn]

  metric_query {
    id          = "backlog"
    expression  = "visible + inflight"
    label       = "Backlog"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.backlog_queries
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/SQS"
        metric_name = metric_query.value
        dimensions  = { QueueName = aws_sqs_queue.images.name }
        period      = 60
        stat        = "Maximum"
      }
    }
  }
}
