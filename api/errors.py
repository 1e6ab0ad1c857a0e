"""Domain errors become HTTP errors here, at the edge, and nowhere else.

======================================  =====  ================================================
InvalidInputError(field, reason)        422    same shape as FastAPI's validation errors
RequestValidationError (FastAPI)        422    FastAPI's shape, made JSON-safe (NaN, surrogates)
JobNotFoundError                        404
ModelNotTrainedError                    409    the message names the `kgforge train` command
RetryableError (graph DB, broker, ...)  503    with Retry-After; the client may try again
ConfigError                             503    the service is not set up (e.g. no graph password)
other KGForgeError                      500    a server-side failure, never bad input
======================================  =====  ================================================
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.hygiene import json_safe
from kg_builder.errors import ConfigError, InvalidInputError, KGForgeError, RetryableError
from kg_builder.jobs import JobNotFoundError
from kg_builder.models.saved import ModelNotTrainedError

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5


def invalid(field: str, reason: str, *, where: str = "body", value: object = None) -> JSONResponse:
    """A 422 in FastAPI's own error shape, naming the field (``a.b`` becomes ``[where, "a", "b"]``)."""
    detail = {"loc": [where, *field.split(".")], "msg": reason, "type": "value_error"}
    if value is not None:
        detail["input"] = value
    return JSONResponse({"detail": [detail]}, status_code=422)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input; a NaN or a lone surrogate there made it a 500.
        return JSONResponse({"detail": json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(InvalidInputError)
    async def _invalid(request: Request, exc: InvalidInputError) -> JSONResponse:
        where = "query" if request.method == "GET" else "body"
        return invalid(exc.field, exc.reason, where=where)

    @app.exception_handler(JobNotFoundError)
    async def _not_found(request: Request, exc: JobNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(ModelNotTrainedError)
    async def _not_trained(request: Request, exc: ModelNotTrainedError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(RetryableError)
    async def _unavailable(request: Request, exc: RetryableError) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(
            {"detail": str(exc)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
        )

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
        )

    @app.exception_handler(KGForgeError)
    async def _server(request: Request, exc: KGForgeError) -> JSONResponse:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=500)


__all__ = ["install", "invalid"]
