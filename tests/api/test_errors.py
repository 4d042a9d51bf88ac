"""One error shape everywhere, and nothing of the inside leaks out."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from service.deps import get_session
from tests.conftest import KeyMaker


async def test_unknown_route_is_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


async def test_wrong_method_is_problem_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/images")

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET, POST"


async def test_wrong_method_on_an_image_lists_every_method_it_has(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(f"/v1/images/{uuid.uuid4()}")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, DELETE"


async def test_unexpected_error_reveals_nothing_inside(
    app: FastAPI, make_key: KeyMaker, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_session() -> AsyncIterator[None]:
        raise RuntimeError("password=hunter2 in service/secret_module.py")
        yield None

    app.dependency_overrides[get_session] = broken_session
    # A valid key: authentication does not use the session, so a bad one is refused before it.
    key = await make_key("alice")
    # The server re-raises after answering, for its own logs; the client only sees the answer.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://picforge") as http:
            response = await http.get("/v1/images", headers={"Authorization": f"Bearer {key}"})
    finally:
        app.dependency_overrides.clear()

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "urn:picforge:error:internal_error",
        "title": "Internal error",
        "status": 500,
        "detail": "Something went wrong on our side.",
        "code": "internal_error",
    }
    assert "hunter2" in caplog.text  # the operator still learns what happened
