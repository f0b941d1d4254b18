"""Restricted-party screening: the CSL sample in its published CSV and JSON shapes, names screened
through transliteration and company-suffix normalisation, and the decision it leads to."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from enforcer.accounts import StaticAccountDirectory
from enforcer.attestation import RegistryAttestationProvider
from enforcer.attestation.submit import submit_token
from enforcer.audit import open_local_store
from enforcer.cli import cli
from enforcer.evidence.collect import Observer, ScreeningSource
from enforcer.model import InputError, LaunchItem, LaunchRequest
from enforcer.pipeline import Enforcer
from enforcer.screening.csl import parse_list
from enforcer.screening.match import Screener
from enforcer.screening.normalise import normalise_name, screening_keys
from enforcer.screening.store import LIST_FILE, load_file
from tests.evidence_support import CSL_CSV, CSL_JSON
from tests.test_attestation_support import ACC_X, BACKENDS, T0, World, make_world, registry_backend

EL = "Entity List (EL) - Bureau of Industry and Security"
ENTRY = "SHENZHEN EXAMPLE INTELLIGENT COMPUTING TECHNOLOGY CO., LTD."


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with registry_backend(request.param, tmp_path) as registry:
        yield make_world(registry)


@pytest.fixture(scope="module")
def screener() -> Screener:
    return Screener(parse_list(CSL_CSV.read_bytes()))


# -- the published formats -----------------------------------------------------------------------


def test_csv_and_json_give_the_same_entries() -> None:
    csv_entries, json_entries = parse_list(CSL_CSV.read_bytes()), parse_list(CSL_JSON.read_bytes())
    assert [(e.entry_id, e.name, e.source, e.alt_names) for e in csv_entries] == [
        (e.entry_id, e.name, e.source, e.alt_names) for e in json_entries
    ]
    first = csv_entries[0]
    assert first.source == EL and first.alt_names == ["SZ EXAMPLE AI", "深圳示例智算科技有限公司"]
    assert first.countries == ["CN"] and csv_entries[1].countries == ["CN", "HK"]
    assert json_entries[1].countries == ["CN", "HK"]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "header"),
        (b"a,b\n1,2\n", "header"),
        (b'{"results": 5}', "expected"),
        (b'{"results": [{"name": ""}]}', "no entry"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe" + b"x" * 10, "UTF-8"),
    ],
)
def test_bad_lists_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(InputError, match=match):
        parse_list(data)


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "SHENZHEN EXAMPLE INTELLIGENT COMPUTING TECHNOLOGY CO., LTD.",
        "Shenzhen Example Intelligent Computing Technology Limited",
        "Shenzhen Example Intelligent Computing Technology Co Ltd",
        "  shenzhen   example intelligent computing technology, LLC",
        "深圳 Example Intelligent Computing Technology 有限公司",
    ],
)
def test_suffixes_spacing_and_script_normalise_alike(name: str) -> None:
    assert normalise_name(name) == "shenzhen example intelligent computing technology"


@pytest.mark.parametrize(
    ("name", "entry", "at_least"),
    [
        ("Shen Zhen Example IntelligentComputing Technology Limited", ENTRY, 92),  # suffix + spacing
        ("深圳示例智算科技有限公司", ENTRY, 92),  # the listed alias in Chinese script
        ("Example National Super-Computing Centre", "EXAMPLE NATIONAL SUPERCOMPUTING CENTER", 92),
        ("Ivan Petrovich EXAMPLOV", "EXAMPLOV, Ivan Petrovich", 92),  # word order
        ("Иван Экзамплов", "EXAMPLOV, Ivan Petrovich", 80),  # Cyrillic, transliterated: a near match
        # adversarial spellings of a listed name
        ("Shen\u200bzhen Example Intelligent Computing Technology", ENTRY, 92),  # zero-width space
        ("\u0405henzhen \u0415xample Intelligent Computing Technology", ENTRY, 92),  # Cyrillic look-alikes
        ("S.h.e.n.z.h.e.n Example Intelligent Computing Technology", ENTRY, 92),  # dotted letters
        ("Example Intelligent Computing Technology (Shenzhen) Co., Ltd.", ENTRY, 92),  # words moved
        ("Shenzhen Example Intelligent Computing Technology Holdings International Trading Cloud", ENTRY, 92),
        ("ＳＨＥＮＺＨＥＮ ＥＸＡＭＰＬＥ Intelligent Computing Technology", ENTRY, 92),  # noqa: RUF001 (full-width)
    ],
)
def test_listed_parties_are_found(screener: Screener, name: str, entry: str, at_least: float) -> None:
    hits = screener.screen(name)
    assert hits and hits[0].entry.name == entry and hits[0].score >= at_least


@pytest.mark.parametrize(
    "name", ["Acme Research Inc", "Example", "Shenzhen Example Trading Co", "Ltd.", "有限公司"]
)
def test_unrelated_or_partial_names_do_not_match(screener: Screener, name: str) -> None:
    assert all(h.score < 80 for h in screener.screen(name))


# -- through the pipeline --------------------------------------------------------------------------


def _enforcer(w: World, engine: Any, catalog: Any, state: Path, **kw: Any) -> Enforcer:
    load_file(CSL_JSON, state, "2026-12-01T00:00:00Z")
    return Enforcer(
        catalog=catalog,
        accounts=StaticAccountDirectory(list(w.origins.values())),
        engine=engine,
        attestations=RegistryAttestationProvider(w.registry),
        observer=Observer(screening=ScreeningSource(state / LIST_FILE)),
        **kw,
    )


def _attest(w: World, name: str | None, aliases: list[str] | None = None) -> None:
    ec: dict[str, Any] = {
        "country": "DE",
        "hq_country": "DE",
        "parent_hq_country": "DE",
        "kyc_level": "verified",
    }
    if name is not None:
        ec["name"] = name
    if aliases is not None:
        ec["aliases"] = aliases
    submit_token(w.token(now=T0, end_customer=ec, jti="att-1"), w.directory(), w.registry, T0 + 60)


def _launch() -> LaunchRequest:
    return LaunchRequest("cloudtrail", "ec2:RunInstances", ACC_X, "us-east-1", items=[LaunchItem("p5.48xlarge", 1)],
                         event_id="evt-screen-1")  # fmt: skip


def test_end_customer_named_like_a_listed_entry_is_denied(
    world: World, engine: Any, catalog: Any, tmp_path: Path
) -> None:
    """Done when: a different suffix and spacing still match; the entry and the list are named."""
    name = "Shen Zhen Example Intelligent Computing Technology Limited"
    _attest(world, name)
    audit = open_local_store(tmp_path / "audit", tmp_path / "keys")
    enf = _enforcer(world, engine, catalog, tmp_path / "state", audit=audit)
    out = enf.enforce(_launch(), T0 + 120)
    audit.close()
    d = out.decision
    assert d.effect == "deny" and d.reason_codes == ["RESTRICTED_PARTY_MATCH"]
    assert ENTRY in d.reasons[0].message and EL in d.reasons[0].message
    hit = d.to_dict()["screening"]["hits"][0]
    assert hit["entry"] == ENTRY and hit["list"] == EL and hit["score"] >= 92
    # the clear name was screened, then left out of the policy input and the log
    assert d.input is not None
    assert "name" not in d.input["attestation"]["end_customers"][0]
    assert d.input["attestation"]["claims"]["end_customer"]["name_screened"] is True
    assert "name" not in d.input["attestation"]["claims"]["end_customer"]
    log = "".join(p.read_text() for p in (tmp_path / "audit").glob("segment-*.jsonl"))
    assert "RESTRICTED_PARTY_MATCH" in log and "Limited" not in log and "Shen Zhen" not in log


def test_an_alias_is_screened_too(world: World, engine: Any, catalog: Any, tmp_path: Path) -> None:
    _attest(world, "Harmless Holdings GmbH", aliases=["Example National Super Computing Center Ltd"])
    d = _enforcer(world, engine, catalog, tmp_path / "state").decide(_launch(), T0 + 120)
    assert d.effect == "deny" and "EXAMPLE NATIONAL SUPERCOMPUTING CENTER" in d.reasons[0].message
    log_input = json.dumps(d.input)
    assert "Harmless" not in log_input and "Super Computing" not in log_input


def test_near_match_is_an_audit(world: World, engine: Any, catalog: Any, tmp_path: Path) -> None:
    _attest(world, "Иван Экзамплов")
    d = _enforcer(world, engine, catalog, tmp_path / "state").decide(_launch(), T0 + 120)
    assert d.effect == "audit" and d.reason_codes == ["RESTRICTED_PARTY_MATCH"]
    assert d.reasons[0].message.startswith("near match")


def test_clear_names_never_reach_the_input_without_an_observer(
    world: World, engine: Any, catalog: Any
) -> None:
    _attest(world, "Some Customer Ltd", aliases=["SC"])
    enf = Enforcer(catalog=catalog, accounts=StaticAccountDirectory(list(world.origins.values())), engine=engine,
                   attestations=RegistryAttestationProvider(world.registry))  # fmt: skip
    d = enf.decide(_launch(), T0 + 120)
    assert d.effect == "allow" and "Some Customer" not in json.dumps(d.input)


def test_unreadable_list_is_reported_not_treated_as_clean(
    world: World, engine: Any, catalog: Any, tmp_path: Path
) -> None:
    _attest(world, "Shenzhen Example Intelligent Computing Technology Ltd")
    state = tmp_path / "state"
    enf = _enforcer(world, engine, catalog, state)
    (state / LIST_FILE).write_text("{broken")
    d = enf.decide(_launch(), T0 + 120)
    assert d.effect == "audit" and d.reason_codes == ["RESTRICTED_PARTY_MATCH"]
    assert "screening unavailable" in d.reasons[0].message


# -- the CLI ---------------------------------------------------------------------------------------


def run(state: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--state", str(state), *args])


@pytest.mark.parametrize("sample", [CSL_CSV, CSL_JSON])
def test_screening_load_and_account_names(tmp_path: Path, sample: Path) -> None:
    from tests.evidence_support import runinstances

    state = tmp_path / "state"
    res = run(state, "screening", "load", str(sample))
    assert res.exit_code == 0, res.output
    meta = json.loads(res.stdout)
    assert meta["entries"] == 4 and EL in meta["lists"] and len(meta["sha256"]) == 64
    assert run(state, "screening", "check", "Example Aviation Industries Corp.").exit_code == 3
    assert run(state, "screening", "check", "Acme Research").exit_code == 0
    # an account whose ultimate parent is listed
    run(state, "account", "add", "111122223333", "--country", "US", "--kyc", "verified",
        "--name", "Acme Cloud Research", "--parent", "Example Aviation Industry Corp.")  # fmt: skip
    ev = tmp_path / "ev.json"
    ev.write_text(json.dumps(runinstances("203.0.113.7", itype="t3.micro")))
    res = run(state, "decide", str(ev))
    doc = json.loads(res.stdout)
    assert res.exit_code == 3 and doc["reasons"][0]["code"] == "RESTRICTED_PARTY_MATCH"
    assert "ultimate parent of account 111122223333" in doc["reasons"][0]["message"]


def test_screening_load_bad_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("just,some\ncsv,here\n")
    res = run(tmp_path / "state", "screening", "load", str(bad))
    assert res.exit_code == 2 and "BAD_SCREENING_LIST" in res.output
    res = run(tmp_path / "state", "screening", "load", str(tmp_path / "missing.json"))
    assert res.exit_code == 2


# -- the index scores exactly as rapidfuzz does over every key ----------------------------------------


def _reference_hits(s: Screener, name: str) -> list[tuple[str, str, float]]:
    """The screening written plainly: under each of the name's keys, token_sort_ratio and ratio over
    every listed key (the MAX_HITS * 4 best of each) and every long-enough listed key whose words are all
    in the name (token_set_ratio 100), however many; each entry keeps its best score over both keys."""
    from rapidfuzz import fuzz, process

    from enforcer.screening import match

    keys, flat, limit = s._keys, s._flat, match.MAX_HITS * 4
    best: dict[int, tuple[float, str]] = {}
    for key in screening_keys(name):
        if len(key.replace(" ", "")) < match.MIN_KEY_CHARS:
            continue
        found = process.extract(key, keys, scorer=fuzz.token_sort_ratio, score_cutoff=s.floor, limit=limit)
        found += process.extract(
            key.replace(" ", ""), flat, scorer=fuzz.ratio, score_cutoff=s.floor, limit=limit
        )
        for idx, listed in enumerate(keys):
            tokens = set(listed.split())
            big = len(tokens) >= match.MIN_CONTAINED_WORDS or len(flat[idx]) >= match.MIN_CONTAINED_CHARS
            if big and tokens <= set(key.split()):
                found.append((listed, fuzz.token_set_ratio(key, listed), idx))
        for _, score, idx in found:
            n, matched = s._owner[idx]
            if score > best.get(n, (-1.0, ""))[0]:
                best[n] = (float(score), matched)
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[: match.MAX_HITS]
    return [(s.entries[n].entry_id, m, sc) for n, (sc, m) in ranked]


@pytest.mark.parametrize("lookalikes", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_index_screens_exactly_as_scoring_every_key(seed: int, lookalikes: bool) -> None:
    """Few words, many ties: more than MAX_HITS * 4 keys score 100, contained ones beyond the cut; with
    lookalikes, screened words have letters swapped for Cyrillic/Greek lookalikes (two keys per name)."""
    import random

    from enforcer.screening.csl import Entry

    rng = random.Random(seed)
    vocab = [
        f"{w}{rng.randint(0, 2)}"
        for w in rng.sample(["alpha", "beta", "gamma", "delta", "epsilonlong", "zeta", "co", "ltd", "x"], 6)
    ]
    swap = dict(
        zip("aeopxlti", "\u0430\u0435\u043e\u0440\u0445\u04cf\u03c4\u0456", strict=True)
    )  # Cyrillic, Greek tau

    def spelt(word: str) -> str:
        if not lookalikes or rng.random() < 0.5:
            return word
        return "".join(swap.get(c, c) if rng.random() < 0.6 else c for c in word)

    words = lambda k: " ".join(rng.choice(vocab) for _ in range(rng.randint(1, k)))  # noqa: E731
    entries = [Entry(f"id{i}", words(5), EL, alt_names=[words(4)]) for i in range(rng.randint(30, 300))]
    s = Screener(entries, floor=rng.choice([60.0, 70.0, 85.0, 100.0]))
    for _ in range(120):
        name = " ".join(spelt(w) for w in words(8).split())
        assert [(h.entry.entry_id, h.matched, h.score) for h in s.screen(name)] == _reference_hits(s, name), (
            name
        )


# -- Latin names typed with Cyrillic / Greek lookalike letters ------------------------------------------


def test_lookalike_letters_give_a_second_key_and_leave_the_first_alone() -> None:
    from enforcer.screening.normalise import LATIN_LOOKALIKES

    for code, latin in LATIN_LOOKALIKES.items():
        name = unicodedata.name(chr(code))
        assert name.split()[0] in ("CYRILLIC", "GREEK") and latin.isascii() and latin.isalpha(), name
        assert chr(code).isupper() == latin.isupper(), name
    assert screening_keys("Inspur Group Co., Ltd.") == ("inspur",)
    assert screening_keys("\u0406n\u0455\u0440ur") == ("indzrur", "inspur")  # Cyrillic I, dze, er
    assert normalise_name("\u0406n\u0455\u0440ur") == "indzrur"  # the ledger's owner key is unchanged
    assert screening_keys("\u0399\u039d\u03a4\u0395\u039b") == ("intel",)  # Greek, one key either way
    assert screening_keys("Иван Экзамплов") == ("ivan ekzamplov",)  # Cyrillic words: read as Cyrillic
    assert screening_keys("\u0420\u041e\u0421\u041e Ltd") == ("roso", "poco")  # all lookalikes: both
    assert screening_keys("Shenzh\u0435n \u0422\u0435\u0441hnology")[1] == "shenzhen technology"
    assert screening_keys("深圳示例智算科技有限公司") == (normalise_name("深圳示例智算科技有限公司"),)


def test_a_lookalike_spelling_is_cached_and_scores_as_the_latin_name() -> None:
    from enforcer.screening.csl import Entry

    s = Screener([Entry("I", "Inspur Group Co., Ltd.", EL), Entry("S", "Sugon", EL)])
    spelt = "\u0405ug\u043en"  # Cyrillic dze and o
    first = s.screen(spelt)
    assert [(h.entry.entry_id, h.score) for h in first] == [("S", 100.0)]
    assert s.screen(spelt) is first
    assert [(h.entry.entry_id, h.score) for h in s.screen("Иван Экзамплов")] == []


def test_the_tr39_table_keeps_only_single_latin_letters_of_other_scripts() -> None:
    """The generated table (scripts/gen_confusables.py) holds what its docstring says, and reads the
    Cyrillic and Greek letters the curated table covers the same way, capitals as capitals."""
    from enforcer.screening.confusables_table import CONFUSABLES
    from enforcer.screening.normalise import LATIN_LOOKALIKES

    assert len(CONFUSABLES) > 300
    for code, latin in CONFUSABLES.items():
        ch = chr(code)
        assert not ch.isascii() and ch.isalpha() and unicodedata.normalize("NFKC", ch) == ch, hex(code)
        assert not unicodedata.name(ch).startswith("LATIN "), hex(code)
        assert len(latin) == 1 and latin.isascii() and latin.isalpha(), hex(code)
    for code, latin in LATIN_LOOKALIKES.items():
        if code in CONFUSABLES and code != 0x04CF:  # small palochka: l here, i in TR39
            assert CONFUSABLES[code] == latin, hex(code)


@pytest.mark.parametrize(
    "spelt",
    [
        "I\u03b7spur",  # Greek eta
        "I\u0578sp\u057dr",  # Armenian vo, seh
        "\u13a5nspur",  # Cherokee v (i)
        "Insp\u2c9fr",  # Coptic small o: not a u, so no match below
    ],
)
def test_lookalikes_of_other_scripts_screen_as_the_latin_name(spelt: str) -> None:
    from enforcer.screening.csl import Entry

    s = Screener([Entry("I", "Inspur Group Co., Ltd.", EL)])
    hits = s.screen(spelt)
    if "\u2c9f" in spelt:  # "Inspor": one letter off, the same score as the plain misspelling
        assert [h.score for h in hits] == [h.score for h in s.screen("Inspor")]
    else:
        assert [(h.entry.entry_id, h.score) for h in hits] == [("I", 100.0)], screening_keys(spelt)
