"""Small expressions in program files, compiled once at load.

A program may say ``when: "course == 'subscription' and 'sale' not in tags"``. The text is parsed
with Python's ``ast`` module, every node is checked against a short whitelist (no attributes, no
imports, no comprehensions, no lambdas, no power), names must be ones the program format declares
for that place, and the tree is compiled to a Python code object. Evaluation is one ``eval`` of
that code object with the declared names: never a re-parse (measured 1.6-1.9x hand-written Python,
against 10-19x for simpleeval parsed once).

Decimal literals become exact fractions, so ``amount * 0.01`` floors the way a person computes it,
and a number an event carries as a binary float (a line's ``tax_rate``, a member attribute) is read
as the decimal it was written as (its shortest repr: 0.08 is 8/100), so ``tax_rate == 0.08`` and
``tax_rate in [0.08, 0.1]`` hold for the event's 0.08 as a marketer means them.

Evaluation is bounded in memory as well as in time: text and lists can only be joined (``+``) up to
``MAX_BUILT`` characters or items, so an expression over a large event cannot build a large value.
"""
from __future__ import annotations

import ast
import copy
import math
import warnings
from fractions import Fraction
from typing import Any, Callable, Optional, cast

from engine.model.errors import EventRejected, Pos, ProgramError
from engine.format.messages import problem, rejected

MAX_SOURCE = 500
MAX_STRING = 200
MAX_DEPTH = 50   # levels of nesting; deeper trees would exhaust the compiler's recursion
# Text or a list an expression builds with '+': a few ids joined is all a condition needs; ~95 joins
# of an 800 KB event's tags would otherwise allocate hundreds of MB (issue 17, item 15).
MAX_BUILT = 10_000

# Decimal values of the binary floats events carry (a handful of tax rates in practice); bounded.
_DECIMALS: dict[float, Fraction] = {}
_DECIMALS_MAX = 4096


def _dec(x: Any) -> Any:
    """A float read from the event as the decimal written in the event (0.08 → 8/100), exact like the
    program's own literals; a list of numbers (a member attribute) element by element."""
    if type(x) is float:
        d = _DECIMALS.get(x)
        if d is None:
            if not math.isfinite(x):
                return x
            d = Fraction(repr(x))
            if len(_DECIMALS) < _DECIMALS_MAX:
                _DECIMALS[x] = d
        return d
    if type(x) is list and any(type(v) is float for v in x):
        return [_dec(v) for v in x]
    return x


def _add(a: Any, b: Any) -> Any:
    # joining text or lists of an event (tags, attributes) must not build a large value
    if isinstance(a, (str, list, tuple)) and hasattr(b, "__len__") and len(a) + len(b) > MAX_BUILT:
        raise ValueError(f"'+' would build a value of more than {MAX_BUILT} characters or items")
    return a + b


def _mul(a: Any, b: Any) -> Any:
    # 'x' * 10**9 would allocate a gigabyte; only numbers multiply.
    if isinstance(a, (str, list, tuple)) or isinstance(b, (str, list, tuple)):
        raise TypeError("only numbers can be multiplied")
    return a * b


def _mod(a: Any, b: Any) -> Any:
    # 'x%0999999999d' % 1 would format a gigabyte of text: only numbers take a remainder.
    if not isinstance(a, (int, float, Fraction)) or not isinstance(b, (int, float, Fraction)):
        raise TypeError("only numbers can take a remainder (%)")
    return a % b


def _div(a: Any, b: Any) -> Any:
    # 8 / 100 is 8/100 exactly, as the decimal 0.08 is (Python's int division would give a float)
    if type(a) is int and type(b) is int:
        if b == 0:
            raise ZeroDivisionError("division by zero")
        return Fraction(a, b)
    return a / b


def _floor(x: Any) -> int:
    return math.floor(x)


def _ceil(x: Any) -> int:
    return math.ceil(x)


def _extreme(pick: Any) -> Any:
    def extreme(*args: Any) -> Any:
        # max('...800 KB of text...') walks every character for nothing a condition needs: one
        # argument must be a list of values, else numbers are compared
        if len(args) == 1 and isinstance(args[0], str):
            raise TypeError(f"{pick.__name__}() of a text: give it numbers or a list")
        return pick(*args)
    return extreme


FUNCTIONS: dict[str, Any] = {
    "min": _extreme(min), "max": _extreme(max), "abs": abs, "floor": _floor, "ceil": _ceil, "len": len,
}
# How many arguments each function takes (at least, at most): a wrong count is found at load.
ARITY: dict[str, tuple[int, int]] = {"min": (1, 50), "max": (1, 50), "abs": (1, 1), "floor": (1, 1), "ceil": (1, 1),
                                     "len": (1, 1)}

_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div,
    ast.FloorDiv, ast.Mod, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.Compare, ast.Eq, ast.NotEq,
    ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.IfExp, ast.Name, ast.Load, ast.Constant,
    ast.Call, ast.List, ast.Tuple, ast.Set, ast.Subscript,
)


class Attributes(dict):
    """Member attributes as expressions see them: a missing attribute reads as None."""

    def __missing__(self, key: Any) -> None:
        return None


class Expr:
    """A compiled expression with the position of its source text."""

    __slots__ = ("source", "pos", "names", "rule", "_code", "_globals")

    def __init__(self, source: str, pos: Pos, names: frozenset[str], code: Any, consts: dict[str, Any],
                 rule: str | None = None):
        self.source = source
        self.pos = pos
        self.names = names
        self.rule = rule     # the rule the expression belongs to: a refusal it causes names it
        self._code = code
        self._globals = {"__builtins__": {}, "_mul": _mul, "_mod": _mod, "_add": _add, "_div": _div,
                         "_dec": _dec, **FUNCTIONS,
                         **consts}

    def __call__(self, env: dict[str, Any]) -> Any:
        try:
            return eval(self._code, self._globals, env)  # noqa: S307 - whitelisted, compiled at load
        except Exception as exc:  # a program expression failing on some input: refuse the event, name the line
            raise rejected("expr.failed", None, self.rule, source=repr(self.source), pos=str(self.pos),
                           error=f"{type(exc).__name__}: {exc}") from None

    def holds_in_happening(self, env: dict[str, Any]) -> bool:
        """The condition, checked where no event can be refused (a birth-month bonus, a version's
        migration): one that cannot be evaluated for this member counts as not met, so the member's
        clock moves on instead of failing again at every later event."""
        try:
            return bool(self(env))
        except EventRejected:
            return False

    def __repr__(self) -> str:
        return f"Expr({self.source!r} at {self.pos})"


class _Rewrite(ast.NodeTransformer):
    """Decimal literals to exact fractions; values read from the event (names, subscripts) to
    decimals; ``a / b`` of whole numbers to an exact fraction; ``a * b``, ``a % b`` and ``a + b`` to
    checked operations."""

    def __init__(self) -> None:
        self.consts: dict[str, Any] = {}

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, float):
            name = f"_c{len(self.consts)}"
            self.consts[name] = Fraction(repr(node.value))
            return ast.copy_location(ast.Name(id=name, ctx=ast.Load()), node)
        return node

    @staticmethod
    def _decimal(node: ast.expr) -> ast.AST:
        call = ast.Call(func=ast.Name(id="_dec", ctx=ast.Load()), args=[node], keywords=[])
        return ast.copy_location(call, node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return node if node.id in FUNCTIONS else self._decimal(node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        node.args = [cast(ast.expr, self.visit(a)) for a in node.args]   # the function's name stays a name
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        self.generic_visit(node)
        return self._decimal(node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        checked = {ast.Mult: "_mul", ast.Mod: "_mod", ast.Add: "_add", ast.Div: "_div"}.get(type(node.op))
        if checked:
            call = ast.Call(func=ast.Name(id=checked, ctx=ast.Load()), args=[node.left, node.right], keywords=[])
            return ast.copy_location(call, node)
        return node


def compile_expr(source: Any, pos: Pos, allowed: frozenset[str] | set[str], what: str = "expression",
                 rule: str | None = None) -> Expr:
    """Check and compile ``source``; raises ProgramError naming ``pos`` (shifted to the column)."""

    parents: dict[ast.AST, ast.AST] = {}
    lead = 0

    def fail(code: str, at: ast.AST | None = None, **args: Any) -> ProgramError:
        # operators (ast.Pow, ast.And ...) carry no column: point at the expression they belong to
        while at is not None and not hasattr(at, "col_offset"):
            at = parents.get(at)
        col = pos.col + lead + (getattr(at, "col_offset", 0) if at is not None else 0)
        return ProgramError([problem(Pos(pos.file, pos.line, col), code, what=what, **args)])

    if isinstance(source, bool) or not isinstance(source, (str, int, float)):
        raise fail("expr.not_text", type=type(source).__name__)
    source = str(source)
    if len(source) > MAX_SOURCE:
        raise fail("expr.too_long", n=MAX_SOURCE)
    try:
        lead = len(source) - len(source.lstrip())
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        col = pos.col + lead + max((exc.offset or 1) - 1, 0)
        raise ProgramError([problem(Pos(pos.file, pos.line, col), "expr.syntax", what=what, source=repr(source),
                                    detail=exc.msg)]) from None
    except (ValueError, RecursionError, MemoryError):
        raise fail("expr.unparsable", source=repr(source)) from None
    _link_parents(tree, parents, fail)
    used: set[str] = set()
    for node in ast.walk(tree):
        _check_node(node, allowed, parents, source, used, fail)
    constant_failure = _constant_failure(tree, parents)
    if constant_failure is not None:
        failing, error = constant_failure
        raise fail("expr.always_fails", failing, part=repr(ast.unparse(failing)), error=f"{type(error).__name__}: {error}")
    rewrite = _Rewrite()
    tree = ast.fix_missing_locations(rewrite.visit(tree))
    with warnings.catch_warnings():   # Python's "perhaps you missed a comma?" is no message for a marketer
        warnings.simplefilter("ignore", SyntaxWarning)
        code = compile(tree, f"<{pos}>", "eval")
    return Expr(source, pos, frozenset(used), code, rewrite.consts, rule)


_Fail = Callable[..., ProgramError]   # compile_expr's fail(code, node, **args): the problem at the node


def _link_parents(tree: ast.AST, parents: dict[ast.AST, ast.AST], fail: _Fail) -> None:
    """Each node's parent, breadth first (no recursion); too deep a tree is refused."""
    depth = {tree: 0}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
            depth[child] = depth[node] + 1
            if depth[child] > MAX_DEPTH:
                raise fail("expr.too_deep", n=MAX_DEPTH)


def _check_node(node: ast.AST, allowed: frozenset[str] | set[str], parents: dict[ast.AST, ast.AST], source: str,
                used: set[str], fail: _Fail) -> None:
    """Refuse a node the sandbox does not allow; a name read goes into ``used``."""
    if not isinstance(node, _ALLOWED):
        raise fail("expr.not_allowed", node, node=type(node).__name__)
    if isinstance(node, ast.Name):
        _check_name(node, allowed, fail)
        used.add(node.id)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            raise fail("expr.call", node)
        least, most = ARITY[node.func.id]
        if not least <= len(node.args) <= most:
            count = f"{least}" if least == most else f"{least} to {most}"
            raise fail("expr.arity", node, func=node.func.id, count=count, got=len(node.args))
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, str) and len(node.value) > MAX_STRING:
            raise fail("expr.long_text", node, n=MAX_STRING)
        if not isinstance(node.value, (str, int, float, bool, type(None))):
            raise fail("expr.constant", node)
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise fail("expr.huge_number", node, source=repr(source))
        parent = parents.get(node)
        if isinstance(node.value, str) and isinstance(parent, ast.BinOp) \
                and isinstance(parent.op, ast.Mod) and parent.left is node:
            raise fail("expr.percent_format", node)


def _check_name(node: ast.Name, allowed: frozenset[str] | set[str], fail: _Fail) -> None:
    """A name must be one the format declares here, or a function; the message guesses the slip."""
    if node.id.startswith("_"):
        raise fail("expr.private_name", node, name=node.id)
    if node.id in allowed or node.id in FUNCTIONS:
        return
    from difflib import get_close_matches

    near = get_close_matches(node.id, sorted(allowed), n=1)
    # YAML and JSON spell the constants in lower case; expressions write them as Python does
    constant = {"true": "True", "false": "False", "null": "None", "none": "None"}.get(node.id.lower())
    if constant:
        raise fail("expr.unknown_name_constant", node, name=node.id, constant=constant)
    if near:
        raise fail("expr.unknown_name_near", node, name=node.id, near=near[0])
    raise fail("expr.unknown_name", node, name=node.id, names=", ".join(sorted(allowed)))


def _constant_failure(tree: ast.Expression, parents: dict) -> tuple[ast.AST, Exception] | None:
    """The largest part of the expression that reads no name and fails whatever the event
    (``'a' < 1``, ``1 / 0``, ``len(3)``): found at load rather than refusing every event. Such a
    part is evaluated here, in the sandbox, once (its operations are checked as at run time)."""
    reads = {node for node in ast.walk(tree) if isinstance(node, ast.Name) and not (
        isinstance(parents.get(node), ast.Call) and parents[node].func is node)}
    tainted: set[ast.AST] = set()
    for name in reads:   # every ancestor of a name depends on the event
        at: Optional[ast.AST] = name
        while at is not None and at not in tainted:
            tainted.add(at)
            at = parents.get(at)
    todo: list[ast.AST] = [tree.body]
    while todo:   # largest parts first; a part that answers is not looked into (0 and 1/0 is fine)
        node = todo.pop(0)
        if node in tainted or not isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.Subscript,
                                                    ast.BoolOp, ast.IfExp)):
            todo.extend(ast.iter_child_nodes(node))
            continue
        part = ast.Expression(body=copy.deepcopy(node))
        rewrite = _Rewrite()
        part = ast.fix_missing_locations(rewrite.visit(part))
        with warnings.catch_warnings():   # "'set' object is not subscriptable" is found just below
            warnings.simplefilter("ignore", SyntaxWarning)
            code = compile(part, "<constant>", "eval")
        probe = Expr("", Pos("", 0, 0), frozenset(), code, rewrite.consts)
        try:
            eval(probe._code, probe._globals, {})  # noqa: S307 - whitelisted, compiled just above
        except (RecursionError, MemoryError):
            return None
        except Exception as exc:  # noqa: BLE001 - whatever it raises, it raises for every event
            return node, exc
    return None


def compared_values(source: str) -> list[tuple[str, str, int]]:
    """(name, text, column) for every text a name is compared with in ``source``: ``tier ==
    'gold'``, ``'gold' != tier``, ``course in ('one_off', 'subscription')``, ``'sale' in tags``
    (a text ``in`` a list name). The column is 0-based in the stripped source. For the loader's
    check that each names something the program knows."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    out: list[tuple[str, str, int]] = []

    def texts(node: ast.AST) -> list[tuple[str, int]]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [(node.value, node.col_offset)]
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return [t for elt in node.elts for t in texts(elt)]
        return []

    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for (a, b), op in zip(zip(operands, operands[1:]), node.ops):
            if isinstance(op, (ast.Eq, ast.NotEq)):
                for name, other in ((a, b), (b, a)):
                    if isinstance(name, ast.Name):
                        out += [(name.id, v, col) for v, col in texts(other)]
            elif isinstance(op, (ast.In, ast.NotIn)):
                if isinstance(a, ast.Name):          # tier in ('gold', 'silver')
                    out += [(a.id, v, col) for v, col in texts(b)]
                elif isinstance(b, ast.Name):        # 'sale' in tags
                    out += [(b.id, v, col) for v, col in texts(a)]
    return out


def attribute_keys(source: str) -> list[tuple[str, int]]:
    """(key, column) of every ``attributes['key']`` (and ``attributes.get('key')``) in ``source``."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "attributes":
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                out.append((key.value, key.col_offset))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and isinstance(node.func.value, ast.Name) and node.func.value.id == "attributes" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.args[0].value, node.args[0].col_offset))
    return out
