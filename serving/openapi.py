"""The OpenAPI 3.0 document served at /docs.json (and shown by the Swagger page at /docs).

Written here rather than generated: BentoML's generated document does not declare the
`direction` path parameter, describes the raw body as text, and lists none of the errors the
service answers. tests/serving/test_openapi.py checks it with openapi-spec-validator and
against the live routes. (BentoML's own clients read /schema.json, which stays BentoML's.)
"""

from __future__ import annotations

from typing import Any

from serving.image_io import DECODED_FORMATS, FORMAT_ALIASES, FORMATS

ERROR = {"$ref": "#/components/schemas/Error"}
RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 0},
    }
}
ERRORS = {
    "400": "bad request: empty body, not an image, bad `resolution`, a form without one "
    "`image` file, an image the output format cannot hold",
    "404": "unknown direction (the message lists the valid ones)",
    "406": "a `format` or `Accept` the service cannot make",
    "422": "a `strength` outside 0 to 1",
    "408": "the body did not arrive in time",
    "413": "more bytes than the byte limit, or more pixels than the pixel limit",
    "415": "an image format the service does not read, a pickle body, or JSON to POST /translate",
    "429": "too many requests in flight",
    "500": "internal error (the server log has the details)",
    "503": "overloaded, busy with large images, or not ready",
}


def error_responses(*statuses: str) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": ERRORS[status],
            "content": {"application/json": {"schema": ERROR}},
        }
        if status in ("429", "503"):
            response["headers"] = RETRY_AFTER
        responses[status] = response
    return responses


IMAGE_ANSWER = {
    "description": "the translated image, at the input's width and height",
    "content": {
        media: {"schema": {"type": "string", "format": "binary"}} for media in FORMATS.values()
    },
}
TRANSLATE_ERRORS = error_responses(
    "400", "404", "406", "408", "413", "415", "422", "429", "500", "503"
)
FORMAT_PARAMETER = {
    "name": "format",
    "in": "query",
    "required": False,
    "description": "output format (else from Accept, else PNG)",
    "schema": {"type": "string", "enum": [*FORMATS, *FORMAT_ALIASES]},
}
RESOLUTION_PARAMETER = {
    "name": "resolution",
    "in": "query",
    "required": False,
    "description": "working resolution: a multiple of 4 from 32 to the server's limit",
    "schema": {"type": "integer", "minimum": 32},
}
STRENGTH_PARAMETER = {
    "name": "strength",
    "in": "query",
    "required": False,
    "description": "how much of the translation to show: 0 is the original's pixels, 1 (the "
    "default) the translation; in between, a blend of the two at full size",
    "schema": {"type": "number", "minimum": 0, "maximum": 1, "default": 1},
}
BINARY = {"type": "string", "format": "binary"}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "CycleGAN translation",
        "version": "1",
        "description": "Send an image and a direction (e.g. horse2zebra); get the translated "
        f"image back. Reads {', '.join(DECODED_FORMATS)}; answers "
        f"{', '.join(FORMATS.values())}.",
    },
    "servers": [{"url": "."}],
    "paths": {
        "/translate/{direction}": {
            "post": {
                "operationId": "translate",
                "summary": "Translate the image in the body",
                "parameters": [
                    {
                        "name": "direction",
                        "in": "path",
                        "required": True,
                        "description": "a direction from GET /directions",
                        "schema": {"type": "string", "example": "horse2zebra"},
                    },
                    FORMAT_PARAMETER,
                    RESOLUTION_PARAMETER,
                    STRENGTH_PARAMETER,
                    {
                        "name": "Accept",
                        "in": "header",
                        "required": False,
                        "description": "preferred output types, with q-values",
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "image/*": {"schema": BINARY},
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["image"],
                                "properties": {"image": BINARY},
                            }
                        },
                    },
                },
                "responses": {"200": IMAGE_ANSWER, **TRANSLATE_ERRORS},
            }
        },
        "/translate": {
            "post": {
                "operationId": "translate_image",
                "summary": "The same translation as a form (bentoml.SyncHTTPClient)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["image", "direction"],
                                "properties": {
                                    "image": BINARY,
                                    "direction": {"type": "string"},
                                    "format": FORMAT_PARAMETER["schema"],
                                    "resolution": RESOLUTION_PARAMETER["schema"],
                                    "strength": STRENGTH_PARAMETER["schema"],
                                },
                            }
                        }
                    },
                },
                "responses": {"200": IMAGE_ANSWER, **TRANSLATE_ERRORS},
            }
        },
        "/directions": {
            "get": {
                "operationId": "directions",
                "summary": "Directions, models, backends and limits",
                "responses": {
                    "200": {
                        "description": "what this server can do",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **error_responses("503"),
                },
            }
        },
        "/examples/{direction}/{kind}.jpg": {
            "get": {
                "operationId": "example",
                "summary": "A direction's example: a photo of its source, and its translation",
                "parameters": [
                    {
                        "name": "direction",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "kind",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": ["input", "output"]},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "a JPEG",
                        "content": {"image/jpeg": {"schema": BINARY}},
                    },
                    **error_responses("404", "503"),
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Ready: every model loaded and warmed up, the generator answering",
                "responses": {
                    "200": {
                        "description": "ready",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **error_responses("503"),
                },
            }
        },
        "/livez": {"get": {"operationId": "livez", "responses": {"200": {"description": "alive"}}}},
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string", "description": "what went wrong"}},
            }
        }
    },
}
