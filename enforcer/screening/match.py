"""Screen names against a loaded list with rapidfuzz.

A name and every listed name (primary and aliases) are reduced to keys (``normalise``); the score
of a pair is the larger of rapidfuzz's ``token_sort_ratio`` over the keys (word order) and its
``ratio`` over the keys without spaces (spacing), and ``token_set_ratio`` only where the *listed*
name is the contained one: a screened name padded with words ("Shenzhen Example Technology Holdings
International Trading") still contains the whole listed name. The reverse (a screened "Example"
inside the listed "Shenzhen Example Technology") is not a match, and a listed name must have at
least ``MIN_CONTAINED_WORDS`` words or ``MIN_CONTAINED_CHARS`` letters to count as contained. The
policy decides what a score means (``data.gpu.evidence.screening``); here every candidate at or above
``floor`` is reported, best first.

A name is screened under every key of ``normalise.screening_keys`` (its transliteration, its reading
with lookalike letters as Latin, its readings with digits typed for letters); each entry keeps its best
score.

A name not seen before is scored against every listed key, so the index does the per-key work once:
``token_sort_ratio`` is ``ratio`` over the keys' words in sorted order (kept sorted here), and a listed
name contained in the screened one always scores 100 on ``token_set_ratio``: every such key counts
(found through a word index instead of scoring every key), however many shorter listed names the
screened name also holds.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz, process

from enforcer.screening.csl import Entry
from enforcer.screening.normalise import despace, normalise_name, screening_keys

#: Candidates below this score are not reported at all.
DEFAULT_FLOOR = 70.0
#: Keys shorter than this (after suffixes are gone) are not screened: too little to tell.
MIN_KEY_CHARS = 3
MAX_HITS = 5
MIN_CONTAINED_WORDS = 3
MIN_CONTAINED_CHARS = 12
_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Hit:
    """One candidate: the listed entry, which of its names matched, and the score (0-100)."""

    entry: Entry
    matched: str
    score: float

    def to_policy(self, subject: str) -> dict[str, Any]:
        return {
            "subject": subject,
            "entry": self.entry.name,
            "matched_name": self.matched,
            "list": self.entry.source,
            "entry_id": self.entry.entry_id,
            "programs": list(self.entry.programs),
            "score": round(self.score, 1),
        }


class Screener:
    """An index over a list's names; ``screen(name)`` answers from a cache for names seen before."""

    def __init__(self, entries: list[Entry], floor: float = DEFAULT_FLOOR, version: str = "") -> None:
        self.entries = entries
        self.floor = floor
        self.version = version
        self._keys: list[str] = []
        self._flat: list[str] = []
        self._sorted: list[str] = []  # each key's words in sorted order (token_sort_ratio's form)
        self._sizes: list[int] = []  # distinct words per key
        self._postings: defaultdict[str, list[int]] = defaultdict(list)  # word -> keys holding it, ascending
        self._owner: list[tuple[int, str]] = []
        for n, e in enumerate(entries):
            for name in (e.name, *e.alt_names):
                key = normalise_name(name)
                flat = despace(key)
                if len(flat) >= MIN_KEY_CHARS:
                    words = key.split()
                    distinct = set(words)
                    for w in distinct:
                        self._postings[w].append(len(self._keys))
                    self._keys.append(key)
                    self._flat.append(flat)
                    self._sorted.append(" ".join(sorted(words)))
                    self._sizes.append(len(distinct))
                    self._owner.append((n, name))
        self._cache: dict[str, list[Hit]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def screen(self, name: str) -> list[Hit]:
        """Every listed entry scoring at least ``floor`` against ``name``, best first (at most 5)."""
        keys = screening_keys(name)
        cache_key = keys[0] if len(keys) == 1 else "\n".join(keys)
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        best: dict[int, tuple[float, str]] = {}
        for key in keys:
            if len(despace(key)) >= MIN_KEY_CHARS:
                self._score_key(key, best)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:MAX_HITS]
        hits = [Hit(self.entries[n], matched, score) for n, (score, matched) in ranked]
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[cache_key] = hits
        return hits

    def _score_key(self, key: str, best: dict[int, tuple[float, str]]) -> None:
        """Raise ``best`` (entry -> (score, matched name)) to what ``key`` scores against each entry."""
        limit = MAX_HITS * 4
        # token_sort_ratio(key, k) is ratio() of both with their words sorted: the keys' are kept sorted
        found = process.extract(
            " ".join(sorted(key.split())),
            self._sorted,
            scorer=fuzz.ratio,
            score_cutoff=self.floor,
            limit=limit,
        )
        found += process.extract(
            despace(key), self._flat, scorer=fuzz.ratio, score_cutoff=self.floor, limit=limit
        )
        for idx in self._contained(key):  # the listed name is the subset (a padded screened name)
            found.append((self._keys[idx], 100.0, idx))
        for _, score, idx in found:
            n, matched = self._owner[idx]
            if score > best.get(n, (-1.0, ""))[0]:
                best[n] = (float(score), matched)

    def _contained(self, key: str) -> list[int]:
        """Listed keys long enough to count whose words are all in ``key``, ascending.

        Each scores 100 (``token_set_ratio``), the top score, and entries tied at the top rank by list
        position: keys of entries after the first ``MAX_HITS`` entries found here can never be reported,
        so the list stops there (which padding the name with listed names cannot change).
        """
        shared: Counter[int] = Counter()
        for w in set(key.split()):
            shared.update(self._postings.get(w, ()))
        out: list[int] = []
        owners: set[int] = set()
        for idx in sorted(i for i, c in shared.items() if c == self._sizes[i]):
            if self._sizes[idx] >= MIN_CONTAINED_WORDS or len(self._flat[idx]) >= MIN_CONTAINED_CHARS:
                n = self._owner[idx][0]
                if n not in owners and len(owners) == MAX_HITS:
                    break
                owners.add(n)
                out.append(idx)
        return out
