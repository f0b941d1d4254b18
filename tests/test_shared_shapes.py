"""One definition each: the account-id shape (enforcer.ids) and strict JSON for signed documents."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from enforcer.accounts import validate_account_id
from enforcer.attestation.token import TokenFormatError, parse_unverified
from enforcer.config import Config, ConfigError
from enforcer.ids import ACCOUNT_RE, is_account_id
from enforcer.intake.cloudtrail import account_id
from enforcer.model import InputError
from enforcer.policy.signing import SIGNATURES_FILE, PolicySignatureError, verify_bundle
from enforcer.strict_json import loads_strict

ARABIC_INDIC = "١٢٣٤٥٦٧٨٩٠١٢"  # twelve digits to Python's \d, not an AWS account id


@pytest.mark.parametrize("value", ["111122223333", "000000000000"])
def test_an_account_id_is_twelve_ascii_digits(value: str) -> None:
    assert is_account_id(value) and ACCOUNT_RE.fullmatch(value)
    assert account_id(value, "x") == value


@pytest.mark.parametrize(
    "value", [ARABIC_INDIC, "11112222333", "1111222233334", "111122223333\n", " 111122223333", 111122223333]
)
def test_every_reader_refuses_what_is_not_one(value: object) -> None:
    assert not is_account_id(value)
    with pytest.raises(InputError):
        account_id(value, "x")
    if isinstance(value, str) and value == value.strip():  # the config trims its settings
        with pytest.raises(ConfigError):
            Config.from_env({"ENFORCER_HOME_ACCOUNT": value})


def test_the_account_directory_uses_the_same_shape() -> None:
    with pytest.raises((InputError, ValueError)):
        validate_account_id(ARABIC_INDIC)


@pytest.mark.parametrize(
    ("doc", "ok"),
    [
        (b'{"a":1,"b":2}', True),
        (b'{"a":1,"a":2}', False),  # Python keeps the last, other readers the first: refused
        (b'{"x":{"k":1,"k":1}}', False),
        (b'{"a":NaN}', False),
        (b'{"a":-Infinity}', False),
        (b'{"a":"\xff"}', False),
    ],
)
def test_strict_json(doc: bytes, ok: bool) -> None:
    if ok:
        assert loads_strict(doc) == {"a": 1, "b": 2}
    else:
        with pytest.raises(ValueError):
            loads_strict(doc)


def _b64(obj: bytes) -> str:
    return base64.urlsafe_b64encode(obj).rstrip(b"=").decode()


def test_an_attestation_header_repeating_alg_is_invalid() -> None:
    header = b'{"alg":"ES256","kid":"k1","typ":"JWT","alg":"none"}'
    token = f"{_b64(header)}.{_b64(b'{}')}.{_b64(b'sig')}"
    with pytest.raises(TokenFormatError, match="header"):
        parse_unverified(token)


def test_a_policy_signature_file_repeating_a_member_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package gpu.launch\n")
    (tmp_path / SIGNATURES_FILE).write_text('{"signatures": ["a.b.c"], "signatures": []}')
    pub = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(PolicySignatureError, match="not valid JSON"):
        verify_bundle(tmp_path, pub)


def test_repeated_members_are_named_but_cut() -> None:
    key = "k" * 500
    with pytest.raises(ValueError) as err:
        loads_strict(json.dumps({key: 1})[:-1] + f', "{key}": 2}}')
    assert len(str(err.value)) < 120


def test_events_and_hook_templates_refuse_repeated_members_through_the_one_hook() -> None:
    """The event reader and the CloudFormation template reader use strict_json's hook, with their own words."""
    from enforcer.intake.cfn_stack import load_template
    from enforcer.intake.parse import parse_event_bytes

    with pytest.raises(InputError, match="duplicate key 'InstanceType'"):
        parse_event_bytes(b'{"InstanceType": "t3.micro", "InstanceType": "p5.48xlarge"}')
    with pytest.raises(InputError, match="template: an object repeats a key"):
        load_template('{"Resources": {}, "Resources": {"G": {"Type": "AWS::EC2::Instance"}}}')
    # a template that is not JSON is still read as YAML (the hook's ValueError is not mistaken for it)
    assert load_template("Resources: {}\n") == {"Resources": {}}
