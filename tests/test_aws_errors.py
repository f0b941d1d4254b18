"""One reading of AWS errors for every backend."""

from __future__ import annotations

from botocore.exceptions import ClientError

from enforcer.aws_errors import error_code


def test_error_code_reads_client_errors_and_never_raises() -> None:
    err = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "DescribeInstances")
    assert error_code(err) == "ThrottlingException"
    odd = RuntimeError("x")
    odd.response = None  # type: ignore[attr-defined]
    assert error_code(odd) == "RuntimeError"
    bad = RuntimeError("y")
    bad.response = {"Error": "not a mapping"}  # type: ignore[attr-defined]
    assert error_code(bad) == "RuntimeError"
    assert error_code(NotImplementedError()) == "NotImplemented"
