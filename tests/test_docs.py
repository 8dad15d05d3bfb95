"""The program format guides (docs/FORMAT.md, docs/FORMAT.ja.md) against the schema and the loader.

The guides end with a key reference table: one row per property of schema/program.schema.json,
its path in the first column in backticks. Paths inside a version start at the version
(`earning.rates[].when` is `versions[].earning.rates[].when`); `[]` is an item of a list. These
tests keep the guides from drifting: a property added to the schema, a key renamed, or a worked
example the loader no longer accepts fails here, naming what to fix in the guides.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine.model.errors import ProgramError
from engine.format.loader import parse_program

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "schema" / "program.schema.json").read_text(encoding="utf-8"))
GUIDES = [ROOT / "docs" / "FORMAT.md", ROOT / "docs" / "FORMAT.ja.md"]

# The reference table of each guide sits between these two markers.
TABLE_START = "<!-- key-reference:start -->"
TABLE_END = "<!-- key-reference:end -->"
# A ```yaml block whose first line is this comment is a version to append to that program file.
APPENDED = re.compile(r"^# appended to (programs/[a-z0-9_]+\.yaml)\s*$")


def _resolve(node: dict, seen_defs: set[str]) -> dict:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        seen_defs.add(name)
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**SCHEMA["$defs"][name], **extra}
    return node


def schema_paths() -> tuple[set[str], set[str]]:
    """Every property path of the program schema, following $ref, items, oneOf and anyOf; and the
    $defs reached on the way. Iterative, with the chain of $defs followed, so a recursive schema
    would end rather than loop."""
    paths: set[str] = set()
    seen_defs: set[str] = set()
    todo: list[tuple[dict, str]] = [(SCHEMA, "")]
    while todo:
        node, path = todo.pop()
        node = _resolve(node, seen_defs)
        for alternative in node.get("oneOf", []) + node.get("anyOf", []):
            todo.append((alternative, path))   # a oneOf's keys sit at the same path
        if isinstance(node.get("items"), dict):
            todo.append((node["items"], path + "[]"))
        for key, sub in node.get("properties", {}).items():
            # inside a version, paths start at the version (the guides' convention)
            child = key if path in ("", "versions[]") else f"{path}.{key}"
            if child not in paths:
                paths.add(child)
                todo.append((sub, child))
    return paths, seen_defs


def table_keys(guide: Path) -> list[str]:
    """The keys in the first column of the guide's key reference table, in order."""
    text = guide.read_text(encoding="utf-8")
    assert TABLE_START in text and TABLE_END in text, f"{guide.name}: no key reference table ({TABLE_START} ... {TABLE_END})"
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    keys = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.strip().startswith("|") or not cells or set(cells[0]) <= set("-: "):
            continue
        found = re.fullmatch(r"`([^`]+)`", cells[0])
        if found:
            keys.append(found.group(1))
    return keys


def yaml_blocks(guide: Path) -> list[tuple[int, str]]:
    """(line number, text) of every ```yaml block of the guide."""
    lines = guide.read_text(encoding="utf-8").splitlines()
    blocks, start = [], None
    for i, line in enumerate(lines, 1):
        if start is None and line.strip() == "```yaml":
            start = i
        elif start is not None and line.strip() == "```":
            blocks.append((start, "\n".join(lines[start:i - 1]) + "\n"))
            start = None
    return blocks


def test_every_schema_def_is_reached_from_the_top():
    # a $defs entry no property leads to would hold keys the path walk (and so the guides) miss
    _, reached = schema_paths()
    assert set(SCHEMA["$defs"]) - reached == set()


@pytest.mark.parametrize("guide", GUIDES, ids=lambda g: g.name)
def test_every_schema_property_has_a_row_in_the_guide_reference(guide):
    paths, _ = schema_paths()
    missing = sorted(paths - set(table_keys(guide)))
    assert not missing, f"{guide.name}: add rows to the key reference for {missing}"


@pytest.mark.parametrize("guide", GUIDES, ids=lambda g: g.name)
def test_every_key_in_the_guide_reference_exists_in_the_schema(guide):
    paths, _ = schema_paths()
    keys = table_keys(guide)
    unknown = sorted(set(keys) - paths)
    assert not unknown, f"{guide.name}: the key reference names keys the schema does not have: {unknown}"
    twice = sorted({k for k in keys if keys.count(k) > 1})
    assert not twice, f"{guide.name}: keys listed twice in the key reference: {twice}"


def test_both_guides_list_the_keys_in_the_same_order():
    # the Japanese guide is the English one translated: a reader can put them side by side
    assert table_keys(GUIDES[0]) == table_keys(GUIDES[1])


@pytest.mark.parametrize("guide", GUIDES, ids=lambda g: g.name)
def test_every_whole_program_and_appended_version_in_the_guide_loads(guide):
    checked = 0
    for line, text in yaml_blocks(guide):
        first = text.splitlines()[0] if text.strip() else ""
        appended = APPENDED.match(first)
        if appended:
            # a worked edit: a new version added at the end of a real program's versions
            base = (ROOT / appended.group(1)).read_text(encoding="utf-8")
            source = base.rstrip("\n") + "\n\n" + text
        elif re.search(r"^program:", text, re.M) and re.search(r"^versions:", text, re.M):
            source = text
        else:
            continue   # a fragment shown for illustration
        try:
            parse_program(source, f"{guide.name}:{line}")
        except ProgramError as exc:
            pytest.fail(f"{guide.name}: the yaml block at line {line} does not load:\n{exc}")
        checked += 1
    assert checked >= 5, f"{guide.name}: expected the worked examples to be checked, found {checked}"
