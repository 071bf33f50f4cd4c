# One customer-managed key for this environment's data at rest: secrets, logs, database,
# cache, queues, topics and images. Rotated yearly by KMS.
resource "aws_kms_key" "main" {
  description             = "${local.name}: secrets, logs, database, cache, queues"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "main" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.main.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A key policy's "*" resource means this key only; the account root administers its own key.
  #checkov:skip=CKV_AWS_111:A key policy's "*" resource means this key only; service principals are limited by conditions.
  #checkov:skip=CKV_AWS_356:A key policy's "*" resource means this key only (it cannot name the key's own ARN).
  # The account administers the key and grants its use through IAM policies (the task
  # execution roles, the scheduler role); RDS, ElastiCache and Secrets Manager use it through
  # grants made on the caller's behalf.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"] # In a key policy "*" means this key.
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogsEncrypts"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${data.aws_partition.current.partition}:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:*"]
    }
  }

  # CloudWatch alarms and EventBridge rules publish to the encrypted alarm topic.
  statement {
    sid       = "AlarmsPublish"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
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
