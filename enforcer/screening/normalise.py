"""Names to comparable keys: transliterated, case-folded, punctuation and company suffixes removed.

``SHENZHEN EXAMPLE TECHNOLOGY CO., LTD.``, ``Shenzhen Example Technology Limited`` and
``深圳 Example Technology 有限公司`` all lose their legal form; spacing is compared separately
(see ``match``), so ``Shen Zhen`` and ``Shenzhen`` meet.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from anyascii import anyascii

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
MAX_NAME_CHARS = 512
_NON_WORD = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=65536)
def normalise_name(name: str) -> str:
    """Return the comparison key of ``name`` (may be empty when nothing but a legal form is left).

    Parameters
    ----------
    name
        A company or person name in any script; longer than ``MAX_NAME_CHARS`` is cut.
    """
    text = unicodedata.normalize("NFKC", name[:MAX_NAME_CHARS])
    for suffix in CJK_SUFFIXES:
        text = text.replace(suffix, " ")
    text = _NON_WORD.sub(" ", anyascii(text).casefold())
    padded = f" {' '.join(text.split())} "
    for phrase in SUFFIX_PHRASES:
        padded = padded.replace(f" {phrase} ", " ")
    return " ".join(w for w in padded.split() if w not in SUFFIX_WORDS)


def despace(key: str) -> str:
    """The key without spaces (``shen zhen`` == ``shenzhen``)."""
    return key.replace(" ", "")
