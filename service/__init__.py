"""The picforge API and what the worker shares with it."""

# The one place the release is named: the OpenAPI document and every AWS request carry it.
VERSION = "0.1.0"
