"""OpenAI-style errors: ``{"error": {"message", "type", "param", "code"}}`` with a matching status."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class APIError(Exception):
    """An error the gateway answers with, in OpenAI's shape. Messages never carry secrets."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> Response:
        return Response(
            orjson.dumps(self.body()), status_code=self.status, media_type="application/json", headers=self.headers
        )


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def authentication_error(
    message: str = "Incorrect API key provided. Pass a valid Switchyard key as 'Authorization: Bearer <key>'.",
) -> APIError:
    return APIError(401, message, type="authentication_error", code="invalid_api_key")


def permission_error(message: str, code: str = "model_not_allowed") -> APIError:
    return APIError(403, message, type="permission_error", code=code)


def model_not_found(model: str) -> APIError:
    return APIError(
        404,
        f"The model '{_clip(model)}' does not exist or you do not have access to it.",
        type="invalid_request_error",
        param="model",
        code="model_not_found",
    )


def not_found(path: str) -> APIError:
    return APIError(
        404,
        f"Unknown request URL: {_clip(path)}. Please check the URL for typos.",
        type="invalid_request_error",
        code="unknown_url",
    )


def _clip(s: str, n: int = 200) -> str:
    s = str(s)
    return s if len(s) <= n else s[:n] + "..."
