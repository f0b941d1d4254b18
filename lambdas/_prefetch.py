"""Start the policy engine's build at the very start of a deciding function's cold start.

Lambda sets ``_HANDLER`` to the function's handler before importing it. For the three handlers that
decide (guard, hook, broker), importing the ``lambdas`` package starts OPA loading and compiling the
policy on a background thread (``enforcer.policy.factory.prefetch_engine``) while Python imports the
handler, boto3 and the pipeline; the runtime build then takes that engine, or raises the error its
build raised. Nothing starts anywhere else (tests, the CLI, the attestation intake).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

#: Handlers whose runtime builds a policy engine (``infra/template.yaml``).
DECIDING = frozenset({"lambdas.guard.handler", "lambdas.cfn_hook.handler", "lambdas.broker.handler"})


def start_engine_prefetch(environ: Mapping[str, str] | None = None) -> threading.Thread | None:
    """Start the engine prefetch when ``_HANDLER`` names a deciding handler and the configuration reads.

    An invalid configuration starts nothing: the first invocation reports it, as before.

    Returns
    -------
    threading.Thread or None
        The builder thread, None when nothing was started.
    """
    env = os.environ if environ is None else environ
    if env.get("_HANDLER") not in DECIDING:
        return None
    from enforcer.config import Config, ConfigError

    try:
        cfg = Config.from_env(env)
    except ConfigError:
        return None
    from enforcer.policy.factory import prefetch_engine

    thread: threading.Thread | None = prefetch_engine(cfg.engine, cfg.policy_dir)
    return thread
