provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Project     = "picforge"
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}
