"""Compute ledger per beneficial owner, and the rolling call share per country per account.

``owners`` says whom a launch counts for (account, attested end customer, ultimate parent,
reseller), ``figures`` holds the arithmetic (running TPP, TPP-hours, cumulative TPP), ``store``
keeps it locally (CLI, replay), ``dynamo`` in DynamoDB (one BatchGetItem to read, the write folded
into the audit transaction), ``release`` turns stop/terminate/completion events into releases.
"""
