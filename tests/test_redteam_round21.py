"""Red team, round 21: 5f32901 (Go runtime GOGC=off under GOMEMLIMIT), 1f14937/b9500b7 (TR39 lookalikes
in screening and ledger keys) and 00babc4 (replay decides rejected launch records as the guard does),
attacked from outside.

Findings are strict xfails (each names the file:line and the smallest fix in its reason); the other tests
pin what held. No network; the Go probes run the real engine in a subprocess under the tested environment.
"""

from __future__ import annotations

import copy
import io
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from enforcer.intake import normalise
from enforcer.intake.malformed import malformed_launch
from enforcer.ledger.owners import owner_name_key
from enforcer.model import AccountOrigin, InputError
from enforcer.policy import go_env
from enforcer.replay import replay
from enforcer.screening.confusables_table import CONFUSABLES
from enforcer.screening.csl import Entry
from enforcer.screening.match import Screener
from tests.test_go_env import run_python

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from synth_cloudtrail import record  # noqa: E402

LISTED = [
    "Inspur",
    "Sugon",
    "Hygon",
    "Sensetime",
    "Megvii",
    "iFlytek",
    "Huawei",
    "Beijing Computational Science Research Center",
]
#: policies: a hit at 92 or more denies RESTRICTED_PARTY_MATCH, 80 to 92 only audits (docs/evidence.md).
DENY_SCORE = 92.0

# Lookalikes from the TR39 table and the curated one (Cyrillic I dze er e o a es, Armenian vo seh).
_LOOK = {
    "I": "\u0406",
    "n": "\u0578",
    "s": "\u0455",
    "p": "\u0440",
    "u": "\u057d",
    "e": "\u0435",
    "o": "\u043e",
    "a": "\u0430",
    "H": "\u041d",
    "y": "\u0443",
    "S": "\u0405",
    "M": "\u041c",
    "i": "\u0456",
}


def _look(word: str) -> str:
    return "".join(_LOOK.get(c, c) for c in word)


def _tags(text: str) -> str:
    """``text`` as invisible Unicode tag characters (U+E0000 block)."""
    return "".join(chr(0xE0000 + ord(c)) for c in text)


@pytest.fixture(scope="module")
def screener() -> Screener:
    return Screener([Entry(str(i), n, "EL") for i, n in enumerate(LISTED)])


def _best(screener: Screener, name: str) -> float:
    hits = screener.screen(name)
    return hits[0].score if hits else 0.0


# -- 1. 1f14937: lookalikes of every script -----------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "plain"),
    [
        (_look("Insp") + "\u00fa" + _look("r"), "Inspur"),  # Latin u with acute: 'iodzrur', no hit at all
        (_look("Sug") + "\u00f3" + _look("n"), "Sugon"),  # 'dzsgoo', no hit
        (_look("Hyg") + "\u00f6" + _look("n"), "Hygon"),  # 'nugoo', no hit
    ],
)
def test_a_latin_letter_with_a_diacritic_does_not_stop_the_fold(
    screener: Screener, spelling: str, plain: str
) -> None:
    assert _best(screener, spelling) >= DENY_SCORE
    assert owner_name_key(spelling) == owner_name_key(plain)


@pytest.mark.parametrize(
    "spelling",
    [
        _look("Ins") + "\u1d18" + _look("ur"),  # LATIN LETTER SMALL CAPITAL P
        "\u026a" + _look("nspur"),  # LATIN LETTER SMALL CAPITAL I (IPA)
        _look("Insp") + "\u028a" + _look("r"),  # LATIN SMALL LETTER UPSILON (IPA)
    ],
)
def test_a_latin_small_capital_or_ipa_letter_does_not_stop_the_fold(
    screener: Screener, spelling: str
) -> None:
    assert _best(screener, spelling) >= DENY_SCORE
    assert owner_name_key(spelling) == owner_name_key("Inspur")


@pytest.mark.parametrize(
    ("spelling", "plain"),
    [
        ("Sug" + _tags("x") + "on", "Sugon"),  # 90.9: audited, not denied
        ("Ins" + _tags("xq") + "pur", "Inspur"),  # 85.7
        ("Hu" + _tags("xqz") + "awei", "Huawei"),  # below the near-match floor
        (_look("Ins") + _tags("a") + _look("pur"), "Inspur"),
    ],
)
def test_invisible_tag_characters_do_not_become_letters(
    screener: Screener, spelling: str, plain: str
) -> None:
    assert _best(screener, spelling) >= DENY_SCORE
    assert owner_name_key(spelling) == owner_name_key(plain)


@pytest.mark.parametrize("filler", ["\u3164", "\uffa0", "\u115f"])
def test_a_hangul_filler_inside_a_lookalike_word_does_not_stop_the_fold(
    screener: Screener, filler: str
) -> None:
    spelling = _look("Ins") + filler + _look("pur")
    assert _best(screener, spelling) >= DENY_SCORE
    assert owner_name_key(spelling) == owner_name_key("Inspur")


@pytest.mark.parametrize(
    "spelling",
    [
        "Megv11",
        "Sug0n",
        "Hyg0n",
        "Huawe1",
        "iF1ytek",
        pytest.param(
            "lnspur",
            marks=pytest.mark.xfail(
                strict=True,
                reason="MEDIUM (left): an I/l swap with no digit, 'lnspur', scores 83.3 (a near match: audit, "
                "the entry named). Fixed for digits (screening_keys' digit keys); a skeleton key for every "
                "name would conflate real i/l names (Lian/Ilan) into denies. The ledger reads them alike.",
            ),
        ),
    ],
)
def test_digits_and_i_l_swaps_for_letters_still_deny(screener: Screener, spelling: str) -> None:
    assert _best(screener, spelling) >= DENY_SCORE


@pytest.mark.parametrize(
    "sep",
    ["\u0301", "\u0323", "\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202e", "\u200e", "\u034f"],
)
def test_marks_joiners_soft_hyphen_and_bidi_controls_inside_a_lookalike_word_held(
    screener: Screener, sep: str
) -> None:
    for name in ("Inspur", "Sugon", "Hygon", "Sensetime", "Megvii", "iFlytek", "Huawei"):
        spelling = _look(name[:2]) + sep + _look(name[2:])
        assert _best(screener, spelling) == 100.0, (name, sep)
        assert owner_name_key(spelling) == owner_name_key(name), (name, sep)


@pytest.mark.parametrize(
    "spelling",
    [
        "\uff29\uff4e\uff53\uff50\uff55\uff52",  # fullwidth
        "\U0001d408\U0001d427\U0001d42c\U0001d429\U0001d42e\U0001d42b",  # mathematical bold
        "Ins\u1d18\u1d1cr",  # Latin small capitals with plain Latin only
        _look("Ins") + "\u1d56" + _look("ur"),  # modifier small p (NFKC folds it)
        "\u026anspur",  # IPA small capital I with plain Latin only
    ],
)
def test_nfkc_and_anyascii_forms_held(screener: Screener, spelling: str) -> None:
    assert _best(screener, spelling) == 100.0
    assert owner_name_key(spelling) == owner_name_key("Inspur")


def test_genuine_non_latin_names_do_not_fold_into_listed_names(screener: Screener) -> None:
    """The reverse (a false deny): a real Cyrillic, Greek or Armenian name keeps a letter of its own, or
    folds into something far from every listed name; only a name typed to look Latin folds."""
    for name in (
        "Сбербанк",
        "Роснано",
        "Ηλιος Τεχνολογία",
        "Հայաստան",
        "Мегафон",
        "Космос",
        "Техно",
        "Сокол",
    ):
        assert _best(screener, name) < DENY_SCORE, name


def test_the_documented_table_size_is_the_table() -> None:
    text = (ROOT / "docs" / "evidence.md").read_text()
    assert f"{len(CONFUSABLES)} letters" in text


# -- 2. 5f32901: GOGC=off under GOMEMLIMIT --------------------------------------------------------------


def test_a_negative_gogc_without_a_limit_is_refused() -> None:
    assert go_env.problems({"GOGC": "-1"})


@pytest.mark.parametrize("limit", ["1TiB", "9223372036854775807", "4096GiB"])
def test_gogc_off_under_a_limit_larger_than_the_function_is_refused(limit: str) -> None:
    assert go_env.problems({"GOGC": "off", "GOMEMLIMIT": limit})


@pytest.mark.parametrize("limit", ["0", "1B", "1KiB"])
def test_gogc_off_under_a_tiny_limit_is_refused(limit: str) -> None:
    assert go_env.problems({"GOGC": "off", "GOMEMLIMIT": limit})


@pytest.mark.parametrize("limit", ["9999999999999999999", "99999999TiB"])
def test_an_overflowing_limit_is_named_before_go_aborts(limit: str) -> None:
    assert go_env.problems({"GOMEMLIMIT": limit})


_run = run_python


def test_go_aborts_on_an_overflowing_limit() -> None:
    p = _run("from opa_bindings import OpaEngine; OpaEngine()", GOMEMLIMIT="9999999999999999999")
    assert p.returncode != 0 and "malformed GOMEMLIMIT" in p.stderr


def test_go_accepts_a_plus_sign_and_so_does_the_check() -> None:
    """GOGC is a signed integer for Go (strconv.ParseInt takes '+100'): taken; the limit's odd spellings
    are refused (stricter than Go: fail-closed), and a limit of 0 is too small to run under."""
    assert not go_env.problems({"GOGC": "+100"}) and go_env.problems({"GOMEMLIMIT": "+100"})
    assert go_env.problems({"GOMEMLIMIT": " 128MiB"}) and go_env.problems({"GOMEMLIMIT": "128mib"})
    assert go_env.problems({"GOMEMLIMIT": "1e9"}) and go_env.problems({"GOMEMLIMIT": "0"})


_VARIED = """
import json, resource
from enforcer.policy import load_bundle
from enforcer.policy.embedded import EmbeddedEngine
e = EmbeddedEngine(load_bundle('policies'))
def doc(i, n):
    acct = str(111122220000 + i)
    item = {'instance_type': 'p5.48xlarge', 'count': 1, 'chip_class': '3A090.a', 'tpp': 126649.6,
            'unresolved': False, 'name': 'x' * (i % 300)}
    return {'request': {'source': 'cloudtrail', 'action': 'ec2:RunInstances', 'account_id': acct,
        'region': 'us-east-1', 'items': [dict(item) for _ in range(n)], 'total_tpp': 126649.6 * n,
        'instance_ids': ['i-%017x' % (i * 1000 + k) for k in range(n * 10)]},
        'attestation': {'status': 'not_required'}, 'now': '2026-12-01T00:00:00Z',
        'account': {'account_id': acct, 'country': 'US', 'hq_country': 'US', 'parent_hq_country': 'US',
                    'kyc': 'verified', 'reseller': None},
        'evidence': {'caller': {'ip': '203.0.113.7', 'country': 'CN', 'source': 't', 'time': 't'}}}
for i in range(4000):
    e.evaluate(doc(i, 1 + i % 8))
for k in range(3):
    e.evaluate(doc(k, 3000))  # six times the 500 resources a stack template may bring
import re  # VmHWM: ru_maxrss survives exec on Linux (a child of a large pytest would report its size)
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({'maxrss_mb': hwm // 1024}))
"""


def test_varied_and_oversized_decisions_stay_under_the_limit_as_deployed() -> None:
    """Held: 20,000 varied decisions as deployed plateau at maxrss 151-152 MB (151 after 5,000); a 5,000
    item document costs 0.13 s CPU with no thrash. This shorter probe keeps the bound."""
    p = _run(_VARIED, **go_env.DEPLOYED)
    assert p.returncode == 0, p.stderr[-2000:]
    rss = json.loads(p.stdout.strip().splitlines()[-1])["maxrss_mb"]
    assert rss < 200, rss  # docs/operations.md: 'about 200 MB of the function's 512 MB'


# -- 3. 00babc4: replay decides a rejected launch record as the guard does ----------------------------

ACCOUNTS = [AccountOrigin("111122223333", "US", "US", "US", "verified")]
NOW = "2025-03-01T10:00:05Z"


def _bad_run() -> dict[str, Any]:
    rec = record(200, random.Random(3))
    assert rec["eventName"] == "RunInstances"
    rec["recipientAccountId"] = "111122223333"
    rec["requestParameters"] = "nonsense"
    return rec


def _guard_decides(event: Any) -> bool:
    """enforcer/guard.py Guard.handle's first step: normalise, else the fail-closed malformed request."""
    try:
        normalise(copy.deepcopy(event), NOW)
    except InputError as exc:
        return malformed_launch(event, exc) is not None
    return True


def _replay_denies(event: Any, make_enforcer: Any) -> bool:
    out = io.StringIO()
    replay(iter([("x", copy.deepcopy(event))]), make_enforcer(ACCOUNTS), out)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    return any(x.get("effect") == "deny" for x in lines)


def _variants() -> list[dict[str, Any]]:
    bad = _bad_run()
    wrapped = {
        "version": "0",
        "id": "e-1",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": "111122223333",
        "region": "us-east-1",
        "time": NOW,
        "detail": bad,
    }
    no_acct = {k: v for k, v in bad.items() if k != "recipientAccountId"}
    ids = dict(bad, responseElements={"instancesSet": {"items": "nonsense"}})
    return [bad, wrapped, dict(wrapped, detail=no_acct), ids, dict(bad, eventID="")]


def test_replay_and_the_guard_agree_on_rejected_launch_records(make_enforcer: Any) -> None:
    for event in _variants():
        assert _guard_decides(event), event
        assert _replay_denies(event, make_enforcer), event


def test_replay_and_the_guard_agree_on_failed_or_read_only_records(make_enforcer: Any) -> None:
    bad = _bad_run()
    for event in (dict(bad, errorCode="Client.Unauthorized"), dict(bad, readOnly="TRUE")):
        assert not _replay_denies(event, make_enforcer)


def test_a_one_record_log_file_with_a_rejected_launch_is_denied(make_enforcer: Any) -> None:
    event = {"Records": [_bad_run()]}
    assert _guard_decides(event)
    assert _replay_denies(event, make_enforcer)


def test_type_mutations_of_a_launch_record_never_crash_the_intake() -> None:
    """Held: every field of RunInstances/CreateFleet records set to a wrong type or size raises
    InputError or decides (47,955 mutations of 30+ recorded events, none crashed); a sample here."""
    base = _bad_run()
    base["requestParameters"] = record(200, random.Random(3))["requestParameters"]
    values: list[Any] = [None, [], {}, 1e308, True, "", "x" * 5000, [None], "\ud800", 10**30]

    def paths(o: Any, p: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        out = [p]
        if isinstance(o, dict):
            for k, v in o.items():
                out += paths(v, (*p, k))
        elif isinstance(o, list):
            for i, v in enumerate(o[:2]):
                out += paths(v, (*p, i))
        return out

    for path in paths(base)[1:]:
        for v in values:
            ev = copy.deepcopy(base)
            at = ev
            for k in path[:-1]:
                at = at[k]
            at[path[-1]] = v
            try:
                normalise(ev, NOW)
            except InputError as exc:
                malformed_launch(ev, exc)
