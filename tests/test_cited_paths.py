"""Every repository path the README, docs/ and the code's comments cite exists."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOP = ("common", "data_prep", "models", "serving", "training", "experiments", "configs", "benchmarks", "docs", "tests")
CITED = re.compile(r"(?<![\w./-])((?:%s)/[\w./-]*\w)(?![\w*<{/-])" % "|".join(TOP))


def cited_paths() -> dict[str, set[str]]:
    """Cited path -> the files citing it, over the tracked text files."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    found: dict[str, set[str]] = {}
    for name in files:
        if not name.endswith((".md", ".py", ".yaml", ".txt", ".cpp", ".h")) or not (REPO / name).is_file():
            continue
        for path in CITED.findall((REPO / name).read_text(errors="replace")):
            found.setdefault(path.rstrip("."), set()).add(name)
    return found


def test_every_cited_path_exists():
    found = cited_paths()
    assert len(found) > 50  # the scan finds the citations
    missing = {path: sorted(where) for path, where in found.items() if not (REPO / path).exists()}
    assert not missing, missing
