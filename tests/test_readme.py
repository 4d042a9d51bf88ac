"""The README stays true: the two commands, every setting, every failure and error code."""

from __future__ import annotations

import pytest

from service.config import ApiSettings
from service.errors import PicforgeError
from tests.conftest import REPO_ROOT
from worker.config import WorkerSettings
from worker.failures import FAILURE_CODES
from worker.validation import REJECTION_CODES

README = (REPO_ROOT / "README.md").read_text()


def subclasses(cls: type[PicforgeError]) -> list[type[PicforgeError]]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in subclasses(direct))]


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one() -> None:
    assert "make dev " in README and "make test " in README
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


@pytest.mark.parametrize("settings", [ApiSettings, WorkerSettings])
def test_readme_documents_every_setting(settings: type[ApiSettings | WorkerSettings]) -> None:
    missing = [
        f"PICFORGE_{name.upper()}"
        for name in settings.model_fields
        if f"`PICFORGE_{name.upper()}`" not in README
    ]
    assert not missing


def test_readme_documents_every_image_failure_code() -> None:
    codes = [str(code) for code in REJECTION_CODES] + list(FAILURE_CODES)
    assert [code for code in codes if f"`{code}`" not in README] == []


def test_readme_documents_every_api_error_code() -> None:
    codes = {error.code for error in subclasses(PicforgeError)}
    assert sorted(code for code in codes if f"`{code}`" not in README) == []
