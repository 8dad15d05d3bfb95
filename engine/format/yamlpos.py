"""Safe YAML that remembers where every value was written.

The loader composes the YAML node graph with PyYAML's SafeLoader (no Python tags, no code), then
builds plain dicts and lists for jsonschema together with a side table ``positions`` that maps
each value's path (a tuple of keys and indexes) to its file position. Errors found later by the
schema or by semantic checks carry the path and so come out as ``FILE:LINE:COL: message``.

Duplicate keys (which PyYAML would silently let the last one win) and alias bombs are errors.
"""
from __future__ import annotations

from typing import Any, Protocol, cast

import yaml

from engine.model.errors import Pos, Problem, ProgramError
from engine.format.messages import problem

# An alias may point at a large subtree; expanding aliases repeatedly ("billion laughs") must stop.
MAX_NODES = 200_000

Path = tuple


class _Builder:
    def __init__(self, filename: str):
        self.filename = filename
        self.positions = Positions(filename)
        self.problems: list[Problem] = []
        self.count = 0
        self.constructor = yaml.SafeLoader("")  # only used for its scalar constructors

    def pos(self, node: yaml.Node) -> Pos:
        return Pos(self.filename, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise ProgramError([problem(self.pos(node), "yaml.alias_bomb", n=MAX_NODES)])
        self.positions.values[path] = self.pos(node)
        if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"'):
            self.positions.quoted.add(path)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.problems.append(problem(self.pos(key_node), "yaml.merge_key"))
                    continue
                # Keys are words, taken as written: YAML 1.1 would read the key 'on' as true.
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag in ("tag:yaml.org,2002:null",):
                    self.problems.append(problem(self.pos(key_node), "yaml.key_not_word"))
                    continue
                key = key_node.value
                if key in out:
                    self.problems.append(problem(self.pos(key_node), "yaml.duplicate_key", key=key, line=self.positions.keys[path + (key,)].line))
                    continue
                self.positions.keys[path + (key,)] = self.pos(key_node)
                out[key] = self.build(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self.build_scalar(cast(yaml.ScalarNode, node))   # a node is a mapping, a sequence or a scalar

    def build_scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == "tag:yaml.org,2002:timestamp":
            # Dates stay text ("2025-11-04"): the schema checks their form, the compiler parses them.
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.problems.append(problem(self.pos(node), "yaml.bad_value", detail=str(exc)))
            return None


# libyaml's CSafeLoader is preferred to the pure-Python SafeLoader, but it recurses in C and
# crashes the process (segfault) on very deeply nested input. A document's nesting depth is at
# most its flow brackets plus its indentation plus its block-sequence dashes on one line; under
# this bound the C loader is safe, above it the pure-Python one answers with a clear error.
SAFE_C_DEPTH = 400


def _depth_bound(text: str) -> int:
    indent = dashes = 0
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        indent = max(indent, len(line) - len(stripped))
        dashes = max(dashes, stripped.count("- "))
    return text.count("[") + text.count("{") + indent + dashes


def _loader_for(text: str):
    c_loader = getattr(yaml, "CSafeLoader", None)
    if c_loader is not None and _depth_bound(text) < SAFE_C_DEPTH:
        return c_loader
    return yaml.SafeLoader


class Where(Protocol):
    """Anything that says where a path of a document was written (``Positions``, or a view of it
    that leads inherited parts to the version that wrote them, engine/format/loader.py)."""

    def at(self, path: Path, key: bool = False, text: bool = False) -> Pos: ...


class Positions:
    """Where each value (and each mapping key) of a loaded document was written."""

    def __init__(self, filename: str):
        self.filename = filename
        self.values: dict[Path, Pos] = {}
        self.keys: dict[Path, Pos] = {}
        self.quoted: set[Path] = set()

    def at(self, path: Path, key: bool = False, text: bool = False) -> Pos:
        """The position of the value at ``path`` (or of its key), else of its nearest ancestor.
        ``text``: where a quoted scalar's text starts (after the quote), for expression columns."""
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        if text and path in self.quoted:
            pos = self.values[path]
            return Pos(pos.file, pos.line, pos.col + 1)
        while path and path not in self.values:
            path = path[:-1]
        return self.values.get(path, Pos(self.filename, 1, 1))


def load(text: str | bytes, filename: str) -> tuple[Any, Positions]:
    """Parse one YAML document. Returns (data, positions) or raises ProgramError."""
    if isinstance(text, bytes):
        raw = text
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            line_start = raw.rfind(b"\n", 0, exc.start) + 1
            # columns count characters, as an editor does, not bytes
            col = len(raw[line_start:exc.start].decode("utf-8", errors="replace")) + 1
            raise ProgramError([problem(Pos(filename, line, col), "file.not_utf8")]) from None
    try:
        try:
            node = yaml.compose(text, Loader=_loader_for(text))
        except yaml.YAMLError:
            # libyaml's messages say less ("found character that cannot start any token"): the
            # pure-Python loader says which character, so a broken file is read again by it.
            node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.reader.ReaderError as exc:
        # a character YAML refuses (NUL, other control characters): at its own line and column,
        # which the reader gives only as an offset into the text
        at = max(0, min(exc.position, len(text)))
        line = text.count("\n", 0, at) + 1
        col = at - (text.rfind("\n", 0, at) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        raise ProgramError([problem(Pos(filename, line, col), "yaml.bad_character", char=f"#x{code:04X}")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        parts = [str(x) for x in (exc.context, exc.problem) if x]
        raise ProgramError([problem(Pos(filename, line, col), "yaml.syntax", detail=" ".join(parts),
                                    parts=parts)]) from None
    except yaml.YAMLError as exc:
        raise ProgramError([problem(Pos(filename, 1, 1), "yaml.other", detail=str(exc))]) from None
    except RecursionError:
        raise ProgramError([problem(Pos(filename, 1, 1), "yaml.nesting")]) from None
    if node is None:
        raise ProgramError([problem(Pos(filename, 1, 1), "file.empty")])
    builder = _Builder(filename)
    try:
        data = builder.build(node, ())
    except RecursionError:
        raise ProgramError([problem(Pos(filename, 1, 1), "yaml.nesting")]) from None
    if builder.problems:
        raise ProgramError(builder.problems)
    return data, builder.positions
