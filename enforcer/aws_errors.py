"""Reading AWS errors the same way everywhere."""

from __future__ import annotations

from collections.abc import Mapping


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``ThrottlingException``), else the type name.

    Safe on any exception: a missing or malformed ``response`` never raises here. moto's
    ``NotImplementedError`` reads as ``NotImplemented``.
    """
    resp = getattr(exc, "response", None)
    if isinstance(resp, Mapping):
        err = resp.get("Error")
        code = err.get("Code") if isinstance(err, Mapping) else None
        if isinstance(code, str) and code:
            return code[:128]
    if isinstance(exc, NotImplementedError):
        return "NotImplemented"
    return type(exc).__name__
