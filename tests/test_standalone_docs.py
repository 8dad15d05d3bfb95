"""Issue 20: the project's docs stand alone. No tracked file sends a reader to the upstream notes the
engineers worked from (a `shared/` folder beside the repository, the shops' saved pages): an
integrator has only what the repository and the wheel hold."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the words a pointer outside the repository takes: ../FOLDER/..., FOLDER/spec, FOLDER/seeds (the
# folder's name put together here, so tests/test_keyref.py's own scan does not find it in this file)
_FOLDER = "sha" + "red"
OUTSIDE = re.compile(rf"{_FOLDER}/(spec|seeds)|\.\./{_FOLDER}\b")


def test_issue20_no_tracked_file_points_outside_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    if not files:   # not a git checkout (an sdist): the files below the root
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()]
    me = Path(__file__).name
    found = []
    for name in files:
        path = ROOT / name
        if path.name == me or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{name}:{n}: {line.strip()[:80]}")
    assert found == []
