"""The key reference of the program format, generated from the program schema, in English and Japanese.

``schema/program.schema.json`` is the one source: every property carries a ``description`` (English)
and an ``x-description-ja`` (Japanese). From it this module makes

- the key reference table of docs/FORMAT.md and docs/FORMAT.ja.md (between the
  ``<!-- key-reference:start -->`` and ``<!-- key-reference:end -->`` markers): one row per key
  path, its values (type, range, choices, default, whether it is required) read from the schema's
  own constraints and its meaning from the description;
- ``schema/program.schema.ja.json``: the same schema with the Japanese texts as its ``description``s,
  for a Japanese shop's editor (``# yaml-language-server: $schema=../schema/program.schema.ja.json``).

    python -m engine.format.keyref            # rewrite the tables and the Japanese schema
    python -m engine.format.keyref --check    # exit 1, naming the files, when any is out of date

Key paths inside a version start at the version (``earning.rates[].when``); ``[]`` is an item of a list.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

JA = "x-description-ja"
TABLE_START = "<!-- key-reference:start -->"
TABLE_END = "<!-- key-reference:end -->"
GUIDES = {"en": "docs/FORMAT.md", "ja": "docs/FORMAT.ja.md"}
SCHEMA = "schema/program.schema.json"
SCHEMA_JA = "schema/program.schema.ja.json"
PACKAGED_JA = "engine/schemas/program.schema.ja.json"

# The words of the values column, by language.
WORDS: dict[str, dict[str, Any]] = {
    "en": {
        "header": "| key | values (default) | meaning |", "req": "req.", "sep": ", ", "end": "; ",
        "or": " or ", "list": "list", "list_min": "list, at least {n}", "list_of": "list of {x}",
        "section": "section", "mapping": "mapping", "text": "text", "id": "id (`a-z`, `0-9`, `_`)",
        "name": "name (`a-z`, `0-9`, `_`, `.`)", "country": "country code", "month_day": "`MM-DD`",
        "map": "{k} → {v}", "key": "name", "section_name": "section", "keys": "the keys that change",
        "range": "{a} to {b}", "below": "{a} to below {b}", "above": "above {a}, up to {b}",
        "from": "from {a}", "number": "number", "whole": "whole number", "default": " (default {d})",
        "tag": "tag",
        "refs": {"rule_id": "rule id", "date": "date (`YYYY-MM-DD`)", "period": "period", "expr": "condition (§4.4)",
                 "yen": "yen", "units": "units", "ladder_step": "step"},
    },
    "ja": {
        "header": "| キー | 値（既定値） | 意味 |", "req": "必須", "sep": "、", "end": "。",
        "or": " または ", "list": "リスト", "list_min": "リスト（{n} つ以上）", "list_of": "{x} のリスト",
        "section": "セクション", "mapping": "マッピング", "text": "文字列", "id": "ID（`a-z`、`0-9`、`_`）",
        "name": "名前（`a-z`、`0-9`、`_`、`.`）", "country": "国コード", "month_day": "`MM-DD`",
        "map": "{k} → {v}", "key": "名前", "section_name": "セクション名", "keys": "変わるキー",
        "range": "{a}〜{b}", "below": "{a} 以上 {b} 未満", "above": "{a} より大きく {b} 以下",
        "from": "{a} 以上", "number": "数値", "whole": "整数", "default": "（既定 {d}）",
        "tag": "タグ",
        "refs": {"rule_id": "ルール ID", "date": "日付（`YYYY-MM-DD`）", "period": "期間", "expr": "条件式（§4.4）",
                 "yen": "円", "units": "単位数", "ladder_step": "ステップ"},
    },
}
SCALAR_REFS = frozenset(WORDS["en"]["refs"])


@dataclass
class Key:
    """One key path of the format and every place of the schema that defines it (a key of a oneOf
    stands in each of its alternatives)."""
    path: str
    sites: list[dict] = field(default_factory=list)     # the property as written (before $ref)
    nodes: list[dict] = field(default_factory=list)     # the property with its $ref resolved
    required: bool = True                               # required in every place it stands


def _resolve(schema: dict, node: dict) -> tuple[dict, str | None]:
    """The node with its $ref chain merged in (the referring keys win), and the last $defs name."""
    name = None
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**schema["$defs"][name], **extra}
    return node, name


def keys(schema: dict) -> list[Key]:
    """Every key path of the schema, in the schema's order (a key before the keys under it),
    following $ref, items, oneOf and anyOf. A $ref chain met again on the same path ends the walk."""
    found: dict[str, Key] = {}

    def walk(node: dict, path: str, chain: tuple[str, ...]) -> None:
        node, name = _resolve(schema, node)
        if name is not None:
            if name in chain:
                return
            chain = chain + (name,)
        for alternative in node.get("oneOf", []) + node.get("anyOf", []):
            walk(alternative, path, chain)
        if isinstance(node.get("items"), dict):
            walk(node["items"], path + "[]", chain)
        required = set(node.get("required", []))
        for key, site in node.get("properties", {}).items():
            child = key if path in ("", "versions[]") else f"{path}.{key}"
            entry = found.get(child)
            if entry is None:
                entry = found[child] = Key(child)
            if any(s is site for s in entry.sites):
                continue
            entry.sites.append(site)
            entry.nodes.append(_resolve(schema, site)[0])
            entry.required = entry.required and key in required
            walk(site, child, chain)

    walk(schema, "", ())
    return list(found.values())


def description(schema: dict, site: dict, lang: str) -> str | None:
    """The text an editor shows for a property: its own, else that of the $defs it refers to."""
    word = "description" if lang == "en" else JA
    node = site
    while True:
        if word in node:
            return node[word]
        if "$ref" not in node:
            return None
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]


def missing_descriptions(schema: dict) -> list[str]:
    """Key paths one of whose places has no description in English or in Japanese; and every node
    of the schema with one of the two texts and not the other."""
    missing = []
    for key in keys(schema):
        for site in key.sites:
            for lang in ("en", "ja"):
                if not description(schema, site, lang):
                    missing.append(f"{key.path} ({'description' if lang == 'en' else JA})")
    for where, node in _dicts(schema, "#"):
        if ("description" in node) != (JA in node):
            missing.append(f"{where} ({'description' if JA in node else JA})")
    return sorted(set(missing))


def _dicts(node: Any, where: str) -> Iterator[tuple[str, dict]]:
    if isinstance(node, dict):
        yield where, node
        for k, v in node.items():
            if k not in ("properties", "$defs") or not isinstance(v, dict):
                yield from _dicts(v, f"{where}/{k}")
            else:   # the names under properties and $defs are keys, not keywords
                for name, sub in v.items():
                    yield from _dicts(sub, f"{where}/{k}/{name}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _dicts(v, f"{where}/{i}")


def _number(n: float) -> str:
    if isinstance(n, int) and n >= 10**9 and str(n).rstrip("0") == "1":
        return f"10^{len(str(n)) - 1}"
    return f"{n:,}"


def _literal(value: Any, w: dict) -> str:
    if isinstance(value, list):
        return w["sep"].join(_literal(v, w) for v in value)
    return f"`{json.dumps(value, ensure_ascii=False)}`" if isinstance(value, bool) else f"`{value}`"


def _kind(schema: dict, site: dict, w: dict, top: bool) -> str:
    """The values a property takes, in words: its $defs kind, choices, range or structure."""
    node, ref = _resolve(schema, site)
    if ref in SCALAR_REFS and "enum" not in site:
        return w["refs"][ref]
    if "oneOf" in node:
        kinds = [_kind(schema, alt, w, top) for alt in node["oneOf"]]
        return w["or"].join(k for i, k in enumerate(kinds) if k not in kinds[:i])
    if "enum" in node:
        return w["sep"].join(_literal(v, w) for v in node["enum"])
    kind = node.get("type")
    if kind == "boolean":
        return "`true`, `false`" if w is WORDS["en"] else "`true`、`false`"
    if kind in ("integer", "number"):
        low, high = node.get("minimum"), node.get("maximum")
        if "exclusiveMaximum" in node:
            return w["below"].format(a=_number(low if low is not None else 0), b=_number(node["exclusiveMaximum"]))
        if "exclusiveMinimum" in node and high is not None:
            return w["above"].format(a=_number(node["exclusiveMinimum"]), b=_number(high))
        if low is not None and high is not None:
            return w["range"].format(a=_number(low), b=_number(high))
        if low is not None:
            return w["from"].format(a=_number(low))
        return w["whole" if kind == "integer" else "number"]
    if kind == "string":
        pattern = node.get("pattern", "")
        if pattern == "^[a-z][a-z0-9_]*$":
            return w["id"]
        if pattern == "^[a-z][a-z0-9_.]*$":
            return w["name"]
        if pattern == "^[A-Z]{2}$":
            return w["country"]
        if pattern.startswith("^(0[1-9]|1[0-2])-"):
            return w["month_day"]
        return w["text"]
    if kind == "array":
        items = node.get("items")
        if isinstance(items, dict):
            inner, inner_ref = _resolve(schema, items)
            if inner_ref in SCALAR_REFS or "enum" in inner or inner.get("type") in ("string", "integer", "number"):
                inner_kind = _kind(schema, items, w, False)
                if w is WORDS["ja"] and not inner_kind.endswith("`"):
                    return f"{inner_kind}のリスト"   # no space after a Japanese word, one after code
                return w["list_of"].format(x=inner_kind)
        if node.get("minItems"):
            return w["list_min"].format(n=node["minItems"])
        return w["list"]
    if kind == "object" or "properties" in node or "additionalProperties" in node:
        extra = node.get("additionalProperties")
        if "properties" not in node and isinstance(extra, dict):
            names = node.get("propertyNames", {})
            if "enum" in names:
                return w["map"].format(k=w["section_name"], v=w["keys"])
            k = w["refs"]["rule_id"] if "pattern" in names else w["key"]
            return w["map"].format(k=k, v=_kind(schema, extra, w, False))
        if "properties" not in node:
            return w["mapping"]
        return w["section"] if top else w["mapping"]
    return ""


def values(schema: dict, key: Key, lang: str) -> str:
    w = WORDS[lang]
    top = "." not in key.path and key.path not in ("program", "name", "unit", "time_zone", "rules",
                                                      "tags", "attributes", "versions", "version",
                                                      "effective_from", "changes", "accounting")
    kinds: list[str] = []
    choices: list[Any] = []
    for site, node in zip(key.sites, key.nodes):
        if "enum" in node and "oneOf" not in node:
            choices += [v for v in node["enum"] if v not in choices]
            continue
        text = _kind(schema, site, w, top or key.path == "accounting")
        if text and text not in kinds:
            kinds.append(text)
    if choices:
        kinds.insert(0, w["sep"].join(_literal(v, w) for v in choices))
    text = w["or"].join(kinds)
    defaults = [n["default"] for n in key.nodes if "default" in n]
    if defaults:
        text += w["default"].format(d=_literal(defaults[0], w))
    if key.required:
        text += (w["end"] if text else "") + w["req"]
    return text


def table(schema: dict, lang: str) -> str:
    """The key reference table in the language, one row per key path, without the markers."""
    rows = [WORDS[lang]["header"], "|---|---|---|"]
    for key in keys(schema):
        meaning = description(schema, key.sites[0], lang) or ""
        cells = [f"`{key.path}`", values(schema, key, lang), meaning]
        rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def with_table(guide: str, schema: dict, lang: str) -> str:
    """The guide's text with its key reference table replaced by the generated one."""
    if TABLE_START not in guide or TABLE_END not in guide:
        raise ValueError(f"no key reference markers ({TABLE_START} ... {TABLE_END})")
    head, rest = guide.split(TABLE_START, 1)
    tail = rest.split(TABLE_END, 1)[1]
    return f"{head}{TABLE_START}\n{table(schema, lang)}{TABLE_END}{tail}"


def japanese_schema(schema: dict) -> dict:
    """The schema whose descriptions are the Japanese ones (the English ones dropped)."""
    out = copy.deepcopy(schema)
    for _, node in _dicts(out, "#"):
        if JA in node:
            node["description"] = node.pop(JA)
    out["$id"] = out["$id"].replace("program.schema.json", "program.schema.ja.json")
    return out


def dump(schema: dict) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def generated(root: Path) -> dict[str, str]:
    """Every generated file of the repository at root, path → the text it should hold."""
    schema = json.loads((root / SCHEMA).read_text(encoding="utf-8"))
    out = {path: with_table((root / path).read_text(encoding="utf-8"), schema, lang) for lang, path in GUIDES.items()}
    out[SCHEMA_JA] = out[PACKAGED_JA] = dump(japanese_schema(schema))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.format.keyref", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 naming the files out of date")
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository (default: the current folder)")
    args = parser.parse_args(argv)
    schema = json.loads((args.root / SCHEMA).read_text(encoding="utf-8"))
    missing = missing_descriptions(schema)
    if missing:
        print(f"{SCHEMA}: no description in both languages for: " + ", ".join(missing), file=sys.stderr)
        return 1
    stale = []
    for path, text in generated(args.root).items():
        target = args.root / path
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            stale.append(path)
            if not args.check:
                target.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("out of date (run python -m engine.format.keyref): " + ", ".join(stale), file=sys.stderr)
        return 1
    print(("up to date" if not stale else "written: " + ", ".join(stale)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
