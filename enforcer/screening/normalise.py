"""Names to comparable keys: transliterated, case-folded, punctuation and company suffixes removed.

``SHENZHEN EXAMPLE TECHNOLOGY CO., LTD.``, ``Shenzhen Example Technology Limited`` and
``深圳 Example Technology 有限公司`` all lose their legal form; spacing is compared separately
(see ``match``), so ``Shen Zhen`` and ``Shenzhen`` meet.

Transliteration spells Cyrillic and Greek by sound (Cyrillic er is ``r``), which is right for a name
written in those scripts but not for a Latin name typed with lookalike letters (``Inspur`` with Cyrillic
I, dze and er transliterates as ``indzrur``).
``screening_keys`` therefore also gives the key of the name with those letters read as the Latin ones
they look like (``LATIN_LOOKALIKES``, completed by the rest of Unicode TR39's single-letter confusables
in ``confusables_table``: Greek eta as n, Armenian vo and seh as n and u, Cherokee, Coptic, Lisu ...),
and the screening keeps the better of the two.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from anyascii import anyascii

from enforcer.screening.confusables_table import CONFUSABLES

#: Legal-form words removed wherever they stand (after transliteration and case folding).
_WORDS = (
    "co company companies corp corporation inc incorporated ltd limited llc llp lp plc "
    "gmbh mbh ag kg kgaa ug ohg se sa sas sarl srl spa sl bv nv oy ab as asa aps "
    "kk kabushiki kaisha jsc ojsc cjsc pjsc oao zao ooo pao tov "
    "pte pvt pty bhd sdn tbk cv group holding holdings"
)
SUFFIX_WORDS = frozenset(_WORDS.split())
#: Multi-word legal forms (matched as word sequences before the single words).
SUFFIX_PHRASES = ("public limited company", "limited liability company", "joint stock company", "co ltd")
#: Legal forms in Chinese, Japanese and Korean script, removed before transliteration.
CJK_SUFFIXES = (
    "股份有限公司",
    "有限责任公司",
    "有限責任公司",
    "有限公司",
    "集团",
    "集團",
    "公司",
    "株式会社",
    "有限会社",
    "주식회사",
)
#: Cyrillic and Greek letters (code points) -> the Latin letter they look like. From Unicode TR39's
#: confusables.txt (https://www.unicode.org/Public/security/latest/confusables.txt), where each of these
#: has the Latin letter's skeleton (Cyrillic small ka, em, en, te and ve there stand for the Latin small
#: capitals K, M, H, T and B). The stroke letters (Cyrillic palochka, Greek iota) read as I or l; the
#: capitals are folded to I, the small palochka to l.
# fmt: off
LATIN_LOOKALIKES: dict[int, str] = {
    # Cyrillic small
    0x0430: "a", 0x0432: "b", 0x0435: "e", 0x043A: "k", 0x043C: "m", 0x043D: "h", 0x043E: "o", 0x0440: "p",
    0x0441: "c", 0x0442: "t", 0x0443: "y", 0x0445: "x", 0x0455: "s", 0x0456: "i", 0x0458: "j", 0x04CF: "l",
    0x0501: "d", 0x04BB: "h", 0x051B: "q", 0x051D: "w", 0x04AF: "y",
    # Cyrillic capital
    0x0410: "A", 0x0412: "B", 0x0415: "E", 0x041A: "K", 0x041C: "M", 0x041D: "H", 0x041E: "O", 0x0420: "P",
    0x0421: "C", 0x0422: "T", 0x0423: "Y", 0x0425: "X", 0x0405: "S", 0x0406: "I", 0x0408: "J", 0x04C0: "I",
    0x051A: "Q", 0x051C: "W", 0x04AE: "Y",
    # Greek small
    0x03B1: "a", 0x03B3: "y", 0x03B9: "i", 0x03BA: "k", 0x03BD: "v", 0x03BF: "o", 0x03C1: "p", 0x03C4: "t",
    0x03C5: "u", 0x03C7: "x",
    # Greek capital
    0x0391: "A", 0x0392: "B", 0x0395: "E", 0x0396: "Z", 0x0397: "H", 0x0399: "I", 0x039A: "K", 0x039C: "M",
    0x039D: "N", 0x039F: "O", 0x03A1: "P", 0x03A4: "T", 0x03A5: "Y", 0x03A7: "X",
}
# fmt: on
#: Every lookalike read as Latin: TR39's single-letter confusables, the curated table above taking
#: precedence where the two differ (the small-capital letters, the small palochka).
_FOLD = str.maketrans({**CONFUSABLES, **LATIN_LOOKALIKES})
MAX_NAME_CHARS = 512
#: Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): invisible characters, removed before
#: anything else. anyascii would otherwise spell some as letters (the tag characters U+E0020-E007F as
#: their ASCII twins: "Sug<tag x>on" read "sugxon"), and a Hangul filler inside a word stops its fold.
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
#: Digits typed for the letters they look like (TR39: 0 is O, 1 is l; 1 also stands for i).
_DIGIT_WORD = re.compile(r"\b(?=[a-z0-9]*[a-z])(?=[a-z0-9]*[01])[a-z0-9]+\b")
_AS_I = str.maketrans("01", "oi")
_AS_L = str.maketrans("01", "ol")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_WORD = re.compile(r"\w+")


@lru_cache(maxsize=65536)
def normalise_name(name: str) -> str:
    """Return the comparison key of ``name`` (may be empty when nothing but a legal form is left).

    Parameters
    ----------
    name
        A company or person name in any script; longer than ``MAX_NAME_CHARS`` is cut.
    """
    text = _visible(name)
    for suffix in CJK_SUFFIXES:
        text = text.replace(suffix, " ")
    text = _NON_WORD.sub(" ", anyascii(text).casefold())
    padded = f" {' '.join(text.split())} "
    for phrase in SUFFIX_PHRASES:
        padded = padded.replace(f" {phrase} ", " ")
    return " ".join(w for w in padded.split() if w not in SUFFIX_WORDS)


def _visible(name: str) -> str:
    """``name`` cut to ``MAX_NAME_CHARS``, NFKC-normalised, without default-ignorable characters."""
    return _IGNORABLE.sub("", unicodedata.normalize("NFKC", name[:MAX_NAME_CHARS]))


@lru_cache(maxsize=65536)
def latin_key(name: str) -> str:
    """``normalise_name(name)`` with lookalike letters read as Latin where a word is written to look Latin
    (see ``screening_keys``); the plain key otherwise."""
    key = normalise_name(name)
    if name.isascii():
        return key
    text = _visible(name)
    folded = _WORD.sub(_fold_word, text)
    return key if folded == text else normalise_name(folded)


@lru_cache(maxsize=65536)
def screening_keys(name: str) -> tuple[str, ...]:
    """The keys ``name`` is screened under: ``normalise_name(name)``, the lookalike spelling's key, and
    the readings of digits typed for letters.

    The lookalike key is there only when a word of ``name`` (after NFKC) mixes Latin letters with
    letters of ``LATIN_LOOKALIKES`` / ``CONFUSABLES`` or is made of lookalikes only, and reading them as
    Latin changes the key. The digit keys are there only when a word mixes letters with 0 or 1
    ("Megv11", "Sug0n"): 0 read as o, 1 as i and as l.

    Parameters
    ----------
    name
        A company or person name in any script.
    """
    key = normalise_name(name)
    keys = [key]
    alt = latin_key(name)
    if alt != key:
        keys.append(alt)
    if _DIGIT_WORD.search(alt):
        for table in (_AS_I, _AS_L):
            spelt = _digits_as(alt, table)
            if spelt not in keys:
                keys.append(spelt)
    return tuple(keys)


def _digits_as(key: str, table: dict[int, int]) -> str:
    """``key`` with the 0s and 1s of its words that mix letters and digits read through ``table``."""
    return _DIGIT_WORD.sub(lambda m: m.group().translate(table), key)


def ledger_skeleton(key: str) -> str:
    """A key for adding up owners: despaced, with the letters a spelling can swap for each other read
    alike (i, l and 1 as l; 0 as o), so "Megv11", "MEGVII" and "Megvll" are one owner. Different names
    that differ only in those letters share an owner: over-counting, never a split."""
    return despace(key).translate(_SKELETON)


_SKELETON = str.maketrans("i10", "llo")


def _fold_word(match: re.Match[str]) -> str:
    """The word with its lookalike letters read as Latin, unless it is written in another script.

    Only a word whose every letter is Latin (accented, small capitals and IPA letters included) or a
    lookalike is folded. A word that keeps a letter of its own after folding (a Russian word with a be
    or a zhe) is Cyrillic or Greek, not a disguised Latin word, even with a stray Latin letter typed
    into it: folding it (the Russian "Sberbank" with one Latin a) would key it apart from its plain
    spelling.
    """
    word = match.group()
    folded = word.translate(_FOLD)
    return folded if all(c.isascii() or _latin(c) for c in folded) else word


def _latin(c: str) -> bool:
    """A Latin-script letter (accented, small capital, IPA) or a combining mark."""
    return bool(unicodedata.combining(c)) or unicodedata.name(c, "").startswith("LATIN ")


def despace(key: str) -> str:
    """The key without spaces (``shen zhen`` == ``shenzhen``)."""
    return key.replace(" ", "")
