"""What a user installs: the schemas the package reads at run time travel inside it.

The repository's top-level ``schema/`` is what editors point at (the ``$schema`` modeline of every
program file); ``engine/schemas/`` is what the wheel carries. They must be the same files.
(.ci/wheel builds the wheel, installs it in a fresh venv outside the checkout and runs the commands.)
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_published_schemas_are_the_packaged_ones():
    published = {p.name: p.read_bytes() for p in (ROOT / "schema").glob("*.json")}
    packaged = {p.name: p.read_bytes() for p in (ROOT / "engine" / "schemas").glob("*.json")}
    assert sorted(published) == ["event.schema.json", "program.schema.ja.json", "program.schema.json", "tests.schema.json"]
    assert packaged == published, "copy schema/*.json to engine/schemas/ (the wheel carries only the package)"


def test_the_loader_reads_the_packaged_schema():
    from engine.format import loader

    assert loader.SCHEMA_DIR == ROOT / "engine" / "schemas"
    assert loader.program_schema()["$schema"].startswith("https://json-schema.org/")
