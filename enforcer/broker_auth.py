"""Who may ask the broker to launch for an account: only that account's own IAM-authenticated callers.

The broker launches with a role in the account named by the request, so the account must come from
something the caller cannot choose: API Gateway's IAM authentication (``requestContext.identity``).
The direct-invoke form (``{"launch", "account_id"}``) names the account in the payload, and a
Lambda invocation carries no caller identity, so the broker handler refuses it: anyone allowed to
invoke the function could otherwise launch in any member account through the broker role.
"""

from __future__ import annotations

import re

from enforcer.model import LaunchRequest

#: ``arn:<partition>:(sts|iam)::<account>:...``
_ARN_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:(?:sts|iam)::([0-9]{12}):[^\s]+\Z")


def refusal(request: LaunchRequest) -> tuple[str, str] | None:
    """``(code, message)`` when the broker must not act for ``request``, else None.

    Parameters
    ----------
    request
        A normalised broker request.
    """
    if "api_request_id" not in request.extra:
        return (
            "DIRECT_INVOKE_REFUSED",
            "the broker launches only for POST /launch through API Gateway (IAM authentication names "
            "the caller's account); a direct invocation cannot prove which account it acts for",
        )
    m = _ARN_ACCOUNT.match(request.principal or "")
    if m is None:
        return ("CALLER_UNKNOWN", "the request carries no IAM caller ARN")
    if m.group(1) != request.account_id:
        caller = (request.principal or "")[:200]
        return ("CALLER_ACCOUNT_MISMATCH", f"caller {caller} is not in account {request.account_id}")
    return None
