resource "aws_ecr_repository" "this" {
  #checkov:skip=CKV_AWS_136: the image holds code only (settings arrive as env vars and Secrets Manager secrets); AES-256 at rest is enough and avoids a KMS grant on every pull.
  name                 = local.name
  image_tag_mutability = "IMMUTABLE"
  # NOTE: as for the buckets: deletable with its images only once protection is off.
  force_delete = !var.deletion_protection

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "AES256"
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name

  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Drop untagged layers (failed or superseded pushes) after a day"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 1
        }
        action = { type = "expire" }
      },
      {
        # NOTE: rollback needs the previous images; 30 is weeks of deploys.
        rulePriority = 2
        description  = "Keep the 30 most recent tagged images"
        selection = {
          tagStatus      = "tagged"
          tagPatternList = ["*"]
          countType      = "imageCountMoreThan"
          countNumber    = 30
        }
        action = { type = "expire" }
      },
    ]
  })
}
