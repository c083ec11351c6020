"""Terraform-facing HTTP: the http state backend (and, later, the module and provider registry)."""
