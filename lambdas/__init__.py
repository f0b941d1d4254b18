"""Thin AWS Lambda handlers: parse the trigger, call the pipeline, format the answer.

``cfn_hook`` (CloudFormation Lambda Hook), ``guard`` (CloudTrail, state change, sweep; remediates),
``broker`` (API Gateway ``POST /launch``) and ``attestation_intake`` (resellers submit attestations).
Every AWS client is created on the first invocation by ``enforcer.wiring.aws.runtime`` and cached
for the container; tests install their own runtime with ``enforcer.wiring.aws.set_runtime``.

Importing this package inside a deciding function (``_HANDLER``) starts the policy engine's build on a
background thread first (``lambdas._prefetch``).
"""

from lambdas._prefetch import start_engine_prefetch

start_engine_prefetch()
