"""The README and docs/ name files of this repository (where a module lives, where a kind is
added): every path they name exists, so a move or a rename that forgets them fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATH = re.compile(r"(?<![\w/.-])((?:router|policies|pricing|benchmarks|tests|deploy|docs)/[\w./-]*\w)")


def test_every_path_the_docs_name_exists() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named: dict[str, set[str]] = {}
    for doc in docs:
        for m in PATH.finditer(doc.read_text()):
            path = m.group(1)
            if path.endswith("_"):  # a prefix, as in tests/test_api_*.py
                continue
            named.setdefault(path, set()).add(doc.name)
    assert len(named) > 40, "the docs name the modules they describe"
    missing = {p: sorted(where) for p, where in named.items() if not (ROOT / p).exists()}
    assert not missing, f"paths named in the docs that do not exist: {missing}"
