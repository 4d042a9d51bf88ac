"""Tests of the Terraform root module in infra/, read with python-hcl2 (no terraform binary)."""
