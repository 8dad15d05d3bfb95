"""Issue 20: a schema that teaches the format, in English and Japanese, and a key reference that cannot drift.

Every property of schema/program.schema.json has a ``description`` (English) and an
``x-description-ja`` (Japanese), its own or that of the $defs entry it refers to (an editor shows
that one when the property has none). schema/program.schema.ja.json is the same schema with the
Japanese texts as its descriptions, for a Japanese shop's editor. The key reference tables of
docs/FORMAT.md and docs/FORMAT.ja.md are generated from the schema by
``python -m engine.format.keyref``: these tests fail when they differ from its output.
"""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
from engine.format import keyref, yamlpos

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "schema" / "program.schema.json").read_text(encoding="utf-8"))
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")   # kana or kanji


def _property_nodes(node, where="#"):
    """Every property of the schema as written (each value of a `properties` map), walked here
    independently of keyref's own walk."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "if":
                continue   # a condition's `properties` (allOf/if) test keys, they define none
            if k == "properties" and isinstance(v, dict):
                for name, sub in v.items():
                    yield f"{where}/properties/{name}", sub
                    yield from _property_nodes(sub, f"{where}/properties/{name}")
            else:
                yield from _property_nodes(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _property_nodes(v, f"{where}/{i}")


def _effective(node: dict, word: str):
    while word not in node and "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node.get(word)


def test_issue20_every_schema_property_has_an_english_and_a_japanese_description():
    nodes = list(_property_nodes(SCHEMA))
    assert len(nodes) >= 200   # the format's properties as written (a oneOf's keys count in each branch)
    no_en = [w for w, n in nodes if not _effective(n, "description")]
    no_ja = [w for w, n in nodes if not _effective(n, keyref.JA)]
    assert no_en == [] and no_ja == [], f"add description / {keyref.JA} to: {no_en + no_ja}"
    # the Japanese text is Japanese, not the English copied
    not_ja = [w for w, n in nodes if not JAPANESE.search(_effective(n, keyref.JA))]
    assert not_ja == []
    # keyref's own check agrees (it also wants every node with one text to carry the other)
    assert keyref.missing_descriptions(SCHEMA) == []


def test_issue20_a_property_without_its_japanese_text_is_reported():
    schema = copy.deepcopy(SCHEMA)
    del schema["$defs"]["earning"]["properties"]["guests_earn"][keyref.JA]
    assert keyref.missing_descriptions(schema) == ["#/$defs/earning/properties/guests_earn (x-description-ja)",
                                                   "earning.guests_earn (x-description-ja)"]


def test_issue20_the_japanese_schema_is_the_same_schema_with_the_japanese_texts():
    published = (ROOT / "schema" / "program.schema.ja.json").read_text(encoding="utf-8")
    assert published == keyref.dump(keyref.japanese_schema(SCHEMA)), "run python -m engine.format.keyref"
    ja = json.loads(published)
    assert ja["properties"]["program"]["description"] == SCHEMA["properties"]["program"][keyref.JA]
    assert ja["$id"].endswith("/program.schema.ja.json")

    def without_texts(node):
        if isinstance(node, dict):
            return {k: without_texts(v) for k, v in node.items() if k not in ("description", keyref.JA, "$id")}
        if isinstance(node, list):
            return [without_texts(v) for v in node]
        return node
    assert without_texts(ja) == without_texts(SCHEMA)   # it checks a file exactly as the English one


PROGRAMS = sorted(p for p in (ROOT / "programs").glob("*.yaml") if not p.name.endswith(".tests.yaml"))


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.name)
def test_issue20_both_schemas_accept_every_program(program):
    data, _ = yamlpos.load(program.read_text(encoding="utf-8"), program.name)
    ja = json.loads((ROOT / "schema" / "program.schema.ja.json").read_text(encoding="utf-8"))
    for schema in (SCHEMA, ja):
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
        assert errors == []


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_issue20_the_guides_key_reference_is_the_generated_one(lang):
    guide = ROOT / keyref.GUIDES[lang]
    text = guide.read_text(encoding="utf-8")
    assert text == keyref.with_table(text, SCHEMA, lang), (
        f"{guide.name}: the key reference differs from the schema: run python -m engine.format.keyref")


def test_issue20_the_table_reads_the_schema_constraints():
    # earning.units: minimum 1, maximum 10^12, default 1, not required -> "1 to 10^12 (default `1`)";
    # redemption.unit_value_yen: 1 to 1,000,000, required -> "1 to 1,000,000; req."
    rows = {line.split(" | ")[0]: line.split(" | ") for line in keyref.table(SCHEMA, "en").splitlines()}
    assert rows["| `earning.units`"][1] == "1 to 10^12 (default `1`)"
    assert rows["| `redemption.unit_value_yen`"][1] == "1 to 1,000,000; req."
    assert rows["| `earning.pending_until`"][1] == "`placed`, `shipped`, `delivered` (default `shipped`)"
    ja_rows = {line.split(" | ")[0]: line.split(" | ") for line in keyref.table(SCHEMA, "ja").splitlines()}
    assert ja_rows["| `redemption.unit_value_yen`"][1] == "1〜1,000,000。必須"
    # a changed constraint changes the row, so a guide written before the change fails the test above
    changed = copy.deepcopy(SCHEMA)
    changed["$defs"]["redemption"]["properties"]["unit_value_yen"]["maximum"] = 5000
    rows = {line.split(" | ")[0]: line.split(" | ") for line in keyref.table(changed, "en").splitlines()}
    assert rows["| `redemption.unit_value_yen`"][1] == "1 to 5,000; req."


def test_issue20_the_generator_rewrites_what_drifted_and_check_names_it(tmp_path, capsys):
    for path in (keyref.SCHEMA, keyref.SCHEMA_JA, keyref.PACKAGED_JA, *keyref.GUIDES.values()):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    assert keyref.main(["--check", "--root", str(tmp_path)]) == 0
    guide = tmp_path / "docs" / "FORMAT.ja.md"
    guide.write_text(guide.read_text(encoding="utf-8").replace("| `earning.units` |", "| `earning.unit` |"), encoding="utf-8")
    assert keyref.main(["--check", "--root", str(tmp_path)]) == 1
    assert "docs/FORMAT.ja.md" in capsys.readouterr().err
    assert keyref.main(["--root", str(tmp_path)]) == 0
    assert guide.read_text(encoding="utf-8") == (ROOT / "docs" / "FORMAT.ja.md").read_text(encoding="utf-8")


def test_issue20_no_file_of_the_repository_refers_to_the_source_pages_folder():
    # The docs stand alone: no tracked file points to the workspace folder the shop pages and the
    # upstream spec came from (the words are put together here so this file does not match itself).
    folder = "sha" + "red"
    pattern = re.compile(rf"(?<![\w-]){folder}/(spec|seeds)\b|/work/{folder}\b|\b{folder}/\w+\.md")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    hits = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.suffix in (".db", ".png", ".whl"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        hits += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    assert hits == []
