"""The OpenAPI 3.1 document of the health API, built from the response models (served at
`/openapi.json`)."""

from __future__ import annotations

from functools import cache

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ray_cdc.observability.models import ErrorBody, Health, ReadyReport, StatusReport

REF = "#/components/schemas/{model}"
_ERROR = {"content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}}}
_UNAUTHORIZED = {"401": {"description": "missing or wrong bearer token (when one is configured)", **_ERROR}}
_FAILED = {"500": {"description": "a figure could not be gathered (the body names the error type)", **_ERROR}}


def _json(model: type[BaseModel], description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}}


def _get(summary: str, responses: dict, *, guarded: bool = True) -> dict:
    operation = {"summary": summary, "responses": {**responses, **_FAILED, **(_UNAUTHORIZED if guarded else {})}}
    if not guarded:
        operation["security"] = []  # open even when a token is configured
    return {"get": operation}


@cache
def document() -> dict:
    _, schemas = models_json_schema([(m, "serialization") for m in (Health, ReadyReport, StatusReport, ErrorBody)],
                                    ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ray_cdc health and metrics", "version": "1"},
        "components": {"schemas": schemas["$defs"],
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/health": _get("the process is alive (never needs the token)",
                            {"200": _json(Health, "alive")}, guarded=False),
            "/ready": _get("every actor of the running pass alive and every destination reachable", {
                "200": _json(ReadyReport, "ready"), "503": _json(ReadyReport, "not ready: the body says why")}),
            "/status": _get("lag per node and segment, rows/s per destination, DLQ size, snapshot progress",
                            {"200": _json(StatusReport, "the pipeline's figures now")}),
            "/metrics": _get("Prometheus text format", {"200": {
                "description": "counters, gauges and histograms",
                "content": {"text/plain": {"schema": {"type": "string"}}}}}),
            "/openapi.json": _get("this document", {"200": {
                "description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}),
        },
    }


def response_schema(path: str, status: int) -> dict:
    """The JSON schema the document gives `path`'s `status` response, standalone (its `$ref`s resolve
    against the bundled components): what a client validates a response with."""
    content = document()["paths"][path]["get"]["responses"][str(status)]["content"]
    return {**next(iter(content.values()))["schema"], "components": document()["components"]}
