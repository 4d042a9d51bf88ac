"""One parse of the Terraform root module for the whole infra test session."""

from __future__ import annotations

import pytest

from .terraform import Module, load_module


@pytest.fixture(scope="session")
def tf() -> Module:
    return load_module()
