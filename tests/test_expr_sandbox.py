"""Expressions are a sandbox (issue 9): one test per known escape of expression libraries.

engine/format/expr.py compiles ``when:`` expressions once, after checking every AST node against a
whitelist (names the program format declares, min/max/abs/floor/ceil/len, no attributes, no imports,
no comprehensions, no lambdas, no power). Each known attack on such evaluators (simpleeval's
documented ones: attribute walks to ``__subclasses__``/``__globals__``, ``str.format`` attribute
access, generator frames, huge powers and ranges, string repetition, deep nesting; plus Python's own:
f-strings, walrus, starred and keyword calls, printf-style ``%`` widths, non-finite literals,
Unicode look-alikes of ``__``) is written into a program's ``when:`` and must be refused at load
with ``FILE:LINE:COL: message`` pointing into that ``when:`` line: never compiled, never a traceback.

A few constructs are allowed by design and guarded at run time (``_mul`` refuses to repeat text);
those are checked to fail fast, without allocating, as an event refusal naming FILE:LINE:COL.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
import tracemalloc
from pathlib import Path

import pytest

from engine.model.errors import EventRejected, Pos, ProgramError
from engine.format.expr import compile_expr
from engine.format.loader import parse_program
from tests.test_faults import loyalty
from tests.test_fuzz import ENV, MINIMAL, WHEN_COL, WHEN_LINE, bounded, memory_bounded

ROOT = Path(__file__).resolve().parents[1]

# (id, expression, what the attack is after)
ESCAPES = [
    ("subclasses-walk", "().__class__.__bases__[0].__subclasses__()", "every class in the process, from a tuple"),
    ("mro-walk", "''.__class__.__mro__[1].__subclasses__()", "object's subclasses via the MRO"),
    ("dunder-name", "__class__", "a dunder as a bare name"),
    ("import", "__import__('os').system('id')", "the import machinery"),
    ("builtins", "__builtins__['eval']('1')", "the builtins mapping"),
    ("eval", "eval('1+1')", "eval by name"),
    ("exec", "exec('import os')", "exec by name"),
    ("compile", "compile('1', 'f', 'eval')", "compile by name"),
    ("open", "open('/etc/passwd').read()", "the file system"),
    ("getattr", "getattr(tags, '__class__')", "attribute access by function"),
    ("globals", "globals()", "the evaluation globals"),
    ("vars", "vars()", "the evaluation locals"),
    ("type", "type(tags)", "type objects"),
    ("breakpoint", "breakpoint()", "the debugger"),
    ("function-globals", "floor.__globals__['math']", "a declared function's __globals__ (simpleeval)"),
    ("builtin-self", "len.__self__.open('/etc/passwd')", "the builtins module via a builtin's __self__"),
    ("lambda-globals", "(lambda: 0).__globals__", "a lambda's globals"),
    ("lambda-call", "(lambda x: x)(1)", "defining functions"),
    ("generator-frame", "(x for x in tags).gi_frame.f_back.f_globals", "a generator's frame, then the caller's"),
    ("list-comprehension", "[c for c in ().__class__.__base__.__subclasses__()]", "loops over subclasses"),
    ("dict-comprehension", "{k: 1 for k in tags}", "comprehensions"),
    ("format-attribute", "'{0.__class__.__base__}'.format(tags)", "str.format attribute access (simpleeval)"),
    ("format-map", "'{a.__class__}'.format_map(attributes)", "str.format_map attribute access"),
    ("format-width", "'{:>999999999}'.format(qty)", "a gigabyte through a format width"),
    ("f-string", "f'{tags.__class__}'", "f-strings"),
    ("f-string-width", "f'{qty:>999999999}'", "a gigabyte through an f-string width"),
    ("percent-width", "'%0999999999d' % 1", "a gigabyte through a printf-style width"),
    ("percent-star-width", "'%*d' % (1000000000, 1)", "a gigabyte through a printf-style * width"),
    ("percent-precision", "'%.999999999f' % 1", "two gigabytes through a printf-style precision"),
    ("power-tower", "9**9**9", "a number too big to compute"),
    ("huge-power", "10**1000000", "a million-digit number"),
    ("pow-function", "pow(2, 1000000000)", "power through the builtin"),
    ("left-shift", "1 << 1000000000", "a 125 MB integer through a shift"),
    ("huge-range", "len(range(1000000000))", "ranges"),
    ("string-repeat-power", "'a' * 10**9", "a gigabyte string through a power"),
    ("infinite-literal", "1e999", "a float literal that overflows to inf"),
    ("deep-unary", "-" * 499 + "1", "recursion depth through 499 nested unary minus (the most 500 characters allow)"),
    ("deep-parentheses", "(" * 240 + "1" + ")" * 240, "the parser's nesting limit"),
    ("too-long", "1+" * 300 + "1", "a 601-character expression"),
    ("long-text-constant", "'" + "a" * 201 + "' in tags", "a text constant over 200 characters"),
    ("walrus", "(x := 1)", "assignment"),
    ("starred", "min(*tags)", "argument unpacking"),
    ("keyword-call", "max(tags, key=len)", "keyword arguments (a callable argument)"),
    ("call-subscript", "[min][0](1, 2)", "calling something that is not a declared function name"),
    ("call-ifexp", "(min if 1 else max)(1, 2)", "calling a computed function"),
    ("unicode-dunder", "\uff3f\uff3fimport\uff3f\uff3f('os')", "full-width underscores that NFKC-normalise to __import__"),
    ("private-helper", "_mul('a', 1000000000)", "the engine's own helper"),
    ("private-constant", "_c0", "the engine's folded constants"),
    ("yield", "(yield)", "generator machinery"),
    ("await", "(await qty)", "coroutines"),
    ("statement", "import os", "statements"),
    ("bytes", "b'\\x00' in tags", "bytes constants"),
    ("complex", "1j", "complex numbers"),
    ("ellipsis", "...", "Ellipsis"),
    ("slice", "tags[::-1]", "slices"),
    ("dict-display", "{'a': 1}['a']", "dict displays"),
    ("bitwise", "~qty | 1", "bitwise operators"),
    ("matmul", "qty @ qty", "operators with user-defined meaning"),
]


def with_when(source: str, base: str = MINIMAL) -> str:
    # a YAML double-quoted scalar is a JSON string (ASCII-escaped: columns stay one per character)
    return base.replace("WHEN", json.dumps(source))


@pytest.mark.parametrize("source", [s for _, s, _ in ESCAPES], ids=[i for i, _, _ in ESCAPES])
def test_escape_is_refused_at_load_with_file_line_col(source):
    text = with_when(source)
    try:
        with bounded(5):
            parse_program(text, "f.yaml")
    except ProgramError as exc:
        problems = exc.problems
    except Exception as exc:  # noqa: BLE001 - the point: anything but ProgramError is a defect
        pytest.fail(f"{source[:60]!r}: the loader raised {type(exc).__name__}: {exc} instead of a ProgramError")
    else:
        pytest.fail(f"{source[:60]!r} was compiled: it must be refused at load")
    (problem,) = problems
    line = str(problem)
    assert re.match(rf"^f\.yaml:{WHEN_LINE}:\d+: (when|[\w.]+\.when): \S", line), line
    scalar = json.dumps(source)
    assert WHEN_COL - 1 <= problem.pos.col <= WHEN_COL + len(scalar), f"column {problem.pos.col} is outside the expression: {line}"


ANDEST_WHEN = "when: \"'points_5pct' in tags\""


@pytest.mark.parametrize("source", ["().__class__.__bases__[0].__subclasses__()", "__import__('os')",
                                    "'{0.__class__}'.format(tags)", "9**9**9", "(lambda: 0).__globals__"])
def test_escape_in_a_real_program_points_at_its_line(source):
    base = (ROOT / "programs" / "andest.yaml").read_text(encoding="utf-8")
    line_no = base[: base.index(ANDEST_WHEN)].count("\n") + 1
    text = base.replace(ANDEST_WHEN, "when: " + json.dumps(source), 1)
    with pytest.raises(ProgramError) as info:
        parse_program(text, "programs/andest.yaml")
    (problem,) = info.value.problems
    assert str(problem).startswith(f"programs/andest.yaml:{line_no}:"), str(problem)


@pytest.mark.parametrize("source", ["().__class__", "1e999", "-" * 499 + "1", "'%0999999999d' % 1"],
                         ids=["attribute", "infinite-literal", "deep-unary", "percent-width"])
def test_validate_command_refuses_escapes_with_file_line_col(tmp_path, source):
    path = tmp_path / "p.yaml"
    path.write_text(with_when(source), encoding="utf-8")
    proc = subprocess.run([loyalty(), "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "internal error" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.match(rf"^{re.escape(str(path))}:{WHEN_LINE}:\d+: when: ", proc.stdout), proc.stdout


# --- allowed by design, guarded when evaluated ----------------------------------------------------

RUNTIME = [
    ("text-repeat-literal", "'a' * 1000000000", {}),
    ("text-repeat-name", "sku * qty", {"sku": "x", "qty": 100_000}),
    ("tuple-repeat", "tags * 1000000000", {}),
    ("list-repeat", "[1] * qty * qty", {"qty": 100_000}),
    ("format-string-from-the-event", "sku % qty", {"sku": "%0999999999d", "qty": 1}),
    ("format-width-from-the-event", "'%0*d' % (qty, 1)", {"qty": 1_000_000_000}),
    ("index-out-of-range", "tags[1000000000]", {}),
    ("division-by-zero", "floor(qty / 0)", {}),
    ("min-of-nothing", "min(tags)", {"tags": ()}),
    ("dunder-key", "attributes['__class__'] == None", {"attributes": {}}),
]


@pytest.mark.parametrize("source, env", [(s, e) for _, s, e in RUNTIME], ids=[i for i, _, _ in RUNTIME])
def test_allowed_constructs_are_harmless_when_evaluated(source, env):
    """These compile (the whitelist allows their nodes; refusing them at load is fine too); evaluated
    on hostile values they answer within 2 s, allocate under 10 MB and fail only as an event
    refusal naming FILE:LINE:COL. Evaluation runs with the address space capped 256 MB above its
    size: an attempt past that is a MemoryError, reported as such."""
    try:
        expr = compile_expr(source, Pos("f.yaml", WHEN_LINE, WHEN_COL + 1), {"sku", "qty", "tags", "attributes"}, "when")
    except ProgramError:
        return
    values = dict(ENV, **env)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with bounded(2), memory_bounded():
            try:
                expr(values)
                message = None
            except EventRejected as exc:
                message = str(exc)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 2
    assert message is None or "MemoryError" not in message, f"{source!r} tried to allocate past 256 MB: {message}"
    assert peak < 10 * 2**20, f"{source!r} allocated {peak / 2**20:.0f} MB"
    if message is not None:
        assert re.search(rf"f\.yaml:{WHEN_LINE}:\d+", message), message
