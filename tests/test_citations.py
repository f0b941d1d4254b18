"""Every file the code, the data and the docs cite is in the repository (issue 15).

A clone must explain itself: no citation of the design notes or research outside the repository, every
repository path a page in ``docs/`` (or the README) names exists, and every ``docs/`` page the code or the
data names exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = (
    "enforcer",
    "lambdas",
    "policies",
    "scripts",
    "benchmarks",
    "tests",
    "docs",
    "infra",
    "tools",
    "examples",
)
SCANNED = ("enforcer", "lambdas", "policies", "scripts", "benchmarks", "tests", "docs", "infra", "tools")
TEXT_SUFFIXES = {".py", ".rego", ".json", ".yaml", ".yml", ".md", ".sh", ".csv", ".toml", ".txt", ".mod"}

# Written in pieces so that this file does not match itself.
OUTSIDE = [
    re.compile(re.escape("DESIGN" + ".md")),  # the design notes outside the repo; the copy is docs/design.md
    re.compile(r"\.\./" + "shared"),
    re.compile("/work" + r"/\w"),
    re.compile("shared" + "/reference"),
    re.compile("/tmp" + "/helpers"),
]
# A repository path: one of the top-level folders, then a path (a trailing '.' or ',' is prose, not path).
REPO_PATH = re.compile(r"(?<![\w./-])((?:" + "|".join(TOP) + r")/[\w./*{},-]*[\w*}])")


def _text_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "Makefile", ROOT / "pyproject.toml"]
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
                files.append(path)
    return files


def _exists(path: str) -> bool:
    if "{" in path:  # docs/{a,b}.md: every alternative
        head, _, rest = path.partition("{")
        alts, _, tail = rest.partition("}")
        return all(_exists(head + alt + tail) for alt in alts.split(","))
    if "*" in path:
        return any(ROOT.glob(path))
    return (ROOT / path).exists()


def repo_paths(text: str) -> list[tuple[int, str]]:
    """Return ``(line, path)`` for every repository path named in ``text``."""
    return [(n, m.group(1)) for n, line in enumerate(text.splitlines(), 1) for m in REPO_PATH.finditer(line)]


def test_nothing_cites_a_file_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}"
        for path in _text_files()
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if any(p.search(line) for p in OUTSIDE)
    ]
    assert not found, "citations of files outside the repository:\n" + "\n".join(found)


def test_every_path_the_docs_name_exists() -> None:
    pages = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md", ROOT / "benchmarks/anchors/README.md"]
    missing = [
        f"{page.relative_to(ROOT)}:{n}: {path}"
        for page in pages
        for n, path in repo_paths(page.read_text())
        if not _exists(path)
    ]
    assert not missing, "paths named in docs that do not exist:\n" + "\n".join(missing)


#: A markdown link's target (``[text](target)``), without its ``#anchor``.
MD_LINK = re.compile(r"\]\(\s*<?([^)\s>#]+)")


def md_links(page: Path) -> list[tuple[int, str]]:
    """Return ``(line, target)`` for every relative link on a markdown page (web and mail links left out)."""
    return [
        (n, m.group(1))
        for n, line in enumerate(page.read_text().splitlines(), 1)
        for m in MD_LINK.finditer(line)
        if not re.match(r"[a-z][a-z0-9+.-]*:", m.group(1))
    ]


def test_every_relative_link_in_the_docs_resolves() -> None:
    pages = [
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted(ROOT.glob("*.md")),
        *sorted(ROOT.glob("benchmarks/**/*.md")),
    ]
    broken = [
        f"{page.relative_to(ROOT)}:{n}: {target}"
        for page in pages
        for n, target in md_links(page)
        if not (page.parent / target).resolve().exists()
        or not (page.parent / target).resolve().is_relative_to(ROOT)
    ]
    assert not broken, "links that lead nowhere (or out of the repository):\n" + "\n".join(broken)


def test_the_link_reader(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("[a](../enforcer/x.py) [b](https://example.org/y) [c](docs/z.md#part) [d](mailto:x@y)")
    assert [t for _, t in md_links(page)] == ["../enforcer/x.py", "docs/z.md"]


def test_every_docs_page_the_code_and_data_cite_exists() -> None:
    missing = [
        f"{path.relative_to(ROOT)}:{n}: {cited}"
        for path in _text_files()
        if path.parts[len(ROOT.parts)] != "tests"  # tests build throwaway docs/ trees of their own
        for n, cited in repo_paths(path.read_text(errors="replace"))
        if cited.startswith("docs/") and not _exists(cited)
    ]
    assert not missing, "docs pages cited but not in the repository:\n" + "\n".join(missing)


def test_data_sources_that_name_a_file_name_it_by_its_repository_path() -> None:
    """``"source": "instances.csv"`` sends a reader hunting; ``docs/sources/instances.csv`` does not."""
    bare = re.compile(r'"(?:source|citation)": "([\w.-]+\.(?:csv|md|json|txt))"')
    found = [
        f"{path.relative_to(ROOT)}: {m.group(1)}"
        for path in [
            *sorted((ROOT / "enforcer").rglob("*.json")),
            *sorted((ROOT / "policies").rglob("*.json")),
        ]
        for m in bare.finditer(path.read_text())
    ]
    assert not found, "data naming a file without its path:\n" + "\n".join(found)


def test_the_architecture_page_is_linked_from_the_readme() -> None:
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see `enforcer/intake/cloudtrail.py`.", ["enforcer/intake/cloudtrail.py"]),
        ("in docs/design.md, the contract", ["docs/design.md"]),
        ("not a path: myenforcer/x.py or ../enforcer/y", []),
        ("tests/events/*.json", ["tests/events/*.json"]),
    ],
)
def test_the_path_reader_reads_paths_in_prose(text: str, expected: list[str]) -> None:
    assert [p for _, p in repo_paths(text)] == expected


def test_a_missing_path_is_caught() -> None:
    assert _exists("enforcer/model.py")
    assert not _exists("enforcer/no_such_module.py")
    assert _exists("tests/events/*.json")
    assert not _exists("docs/{design,no-such-page}.md")
