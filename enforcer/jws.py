"""JWS algorithm pinning shared by attestations and policy-bundle signatures.

The algorithm always comes from the verifying key (ES256 or EdDSA), never from a token's header.
"""

from __future__ import annotations

from joserfc.errors import UnsupportedAlgorithmError
from joserfc.jwa import JWSAlgModel
from joserfc.jws import JWSRegistry

ALGORITHMS = ("ES256", "EdDSA")


def pinned_registry(algorithm: str, max_header: int, max_payload: int) -> JWSRegistry:
    """A joserfc registry that accepts exactly ``algorithm``, with bounded segment sizes.

    Parameters
    ----------
    algorithm
        ``ES256`` or ``EdDSA`` (joserfc warns on ``EdDSA``; docs/design.md pins it, so no warning here).
    max_header, max_payload
        Largest accepted header and payload, in bytes.

    Raises
    ------
    ValueError
        For any other algorithm.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm {algorithm!r} is not pinned")

    class _Pinned(JWSRegistry):
        max_header_length = max_header
        max_payload_length = max_payload
        max_signature_length = 128

        def get_alg(self, name: str) -> JWSAlgModel:
            if name != algorithm:
                raise UnsupportedAlgorithmError(f"algorithm {name!r} does not match the key ({algorithm})")
            return self.algorithms[name]

    return _Pinned(algorithms=[algorithm], strict_check_header=True)
