"""/docs.json is a valid OpenAPI document that describes the real API: every route, its
parameters, answers and errors, as a client generator would read them."""

from __future__ import annotations

import httpx
from openapi_spec_validator import validate

from tests.serverlib import Server

ERROR_STATUSES = {"400", "404", "406", "413", "415", "429", "503"}


def test_openapi_document_is_valid_and_complete(server: Server) -> None:
    """Bug guarded: BentoML's document did not declare `direction` (schemathesis stopped)."""
    document = httpx.get(f"{server.url}/docs.json", timeout=30).json()
    validate(document)  # raises with the first problem
    translate = document["paths"]["/translate/{direction}"]["post"]
    parameters = {(p["in"], p["name"]): p for p in translate["parameters"]}
    assert parameters[("path", "direction")]["required"] is True
    assert {("query", "format"), ("query", "resolution")} <= set(parameters)
    for path in ("/translate/{direction}", "/translate"):
        responses = document["paths"][path]["post"]["responses"]
        assert set(responses) >= ERROR_STATUSES, set(responses)
        for status in ERROR_STATUSES:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
        assert "Retry-After" in responses["503"]["headers"]
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and error["properties"]["error"]["type"] == "string"


def test_documented_routes_answer(server: Server) -> None:
    document = httpx.get(f"{server.url}/docs.json", timeout=30).json()
    examples = {"{direction}": "horse2zebra", "{kind}": "output"}
    for path, item in document["paths"].items():
        if "get" in item:
            for name, value in examples.items():
                path = path.replace(name, value)
            assert httpx.get(f"{server.url}{path}", timeout=30).status_code == 200, path
    # The documented error shape is the one the service writes.
    answer = httpx.post(
        f"{server.url}/translate/nowhere",
        content=b"x",
        headers={"content-type": "image/png"},
        timeout=60,
    )
    assert answer.status_code == 404 and set(answer.json()) == {"error"}
