terraform {
  # NOTE: 1.10 is the first release whose S3 backend locks with a lock file (use_lockfile),
  # so no DynamoDB table is needed for state locking.
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # NOTE: 6.x: `data.aws_region.current.region` (not `.name`) and per-resource `region`;
      # 6.15 added aws_db_proxy's default_auth_scheme (end-to-end IAM: database_proxy.tf).
      version = "~> 6.15"
    }
  }

  # NOTE: partial configuration; bucket/key/region come from `-backend-config=backend.hcl`
  # (see README.md), so one root module serves every environment with its own state.
  backend "s3" {}
}
