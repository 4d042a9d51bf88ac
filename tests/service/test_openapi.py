"""The OpenAPI document: committed, complete, and precise enough to generate a client from."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from service.main import create_app
from service.openapi import render_document
from tests.conftest import REPO_ROOT

COMMITTED = REPO_ROOT / "openapi.json"
REGENERATE = "picforge openapi > openapi.json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    built: dict[str, Any] = create_app().openapi()
    return built


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_openapi_committed_copy_matches_app() -> None:
    assert COMMITTED.read_text() == render_document(create_app()), f"run `{REGENERATE}`"


def test_openapi_every_error_response_is_a_problem_with_examples(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            assert list(response["content"]) == ["application/problem+json"], (method, path)
            media = response["content"]["application/problem+json"]
            assert media["schema"] == {"$ref": "#/components/schemas/Problem"}, (method, path)
            for example in media["examples"].values():
                assert example["value"]["status"] == int(status), (method, path, status)
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_openapi_describes_every_operation_and_parameter(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        assert operation["summary"], (method, path)
        assert operation["tags"], (method, path)
        assert operation["operationId"].isalnum(), (method, path)
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), (method, path, parameter["name"])


def test_openapi_declares_bearer_on_image_routes_only(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for method, path, operation in operations(document):
        if path.startswith("/v1/"):
            assert operation["security"] == [{"ApiKey": []}], (method, path)
            assert "401" in operation["responses"], (method, path)
        else:
            assert "security" not in operation, (method, path)


def test_openapi_upload_ticket_is_discriminated_on_method(document: dict[str, Any]) -> None:
    upload = document["components"]["schemas"]["ImageCreatedOut"]["properties"]["upload"]

    assert upload["discriminator"] == {
        "propertyName": "method",
        "mapping": {
            "POST": "#/components/schemas/PostUploadTicket",
            "PUT": "#/components/schemas/PutUploadTicket",
            "MULTIPART": "#/components/schemas/MultipartUploadTicket",
        },
    }


async def test_docs_page_renders_document(anonymous_client: httpx.AsyncClient) -> None:
    docs = await anonymous_client.get("/docs")
    served = await anonymous_client.get("/openapi.json")

    assert docs.status_code == 200
    assert "/openapi.json" in docs.text
    assert served.json() == json.loads(COMMITTED.read_text())
