"""CircleCI conditions over pipeline values: the expression language (semantics §5.5) and
logic statements (§5.6), evaluated when their values are known and lowered to the condition
algebra (`cicompile.conditions`) when they depend on values known only at run time.

Run-time values every target can test: `pipeline.git.branch` and `pipeline.git.tag` (one of
them is set: a branch pipeline has no tag, a tag pipeline no branch; the absent one is `""`
in a logic statement, where it is substituted as text, and null in an expression), what
started the pipeline — `pipeline.trigger_source` (`webhook`, `api`, `scheduled_pipeline`),
its successor `pipeline.trigger.type` and `pipeline.event.name`, as far as their values
follow from the source (SOURCE_VALUES) — and `pipeline.schedule.name` (absent except on
scheduled pipelines). Anything else (`pipeline.git.revision`, a push's integration type...)
raises `Unsupported`, and callers keep their precise warning.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from cicompile.conditions import (
    FALSE,
    SCHEDULED,
    TRIGGER_SOURCES,
    TRUE,
    And,
    Cond,
    Const,
    IsKind,
    Match,
    Not,
    Or,
    Pattern,
    RefKind,
    ScheduleName,
    Trigger,
    all_of,
    any_of,
    negate,
    uses_trigger,
)
from cicompile.diagnostics import Diagnostics
from cicompile.frontend.yaml_loader import YMap, YNode, YScalar, YSeq
from cicompile.records import dataclass

if TYPE_CHECKING:
    from lark import Lark

Value = str | int | float | bool | None

_REF_KINDS = {"git.branch": RefKind.BRANCH, "git.tag": RefKind.TAG}
# The values each pipeline value about what started the pipeline takes, per trigger source
# (semantics §5.7, §5.8). A test of such a value is the set of sources for which it holds on
# every value listed: a push's `trigger.type` is its integration (`github_app`...), which the
# targets cannot know, so a test that tells integrations apart is not testable.
SOURCE_VALUES: dict[str, dict[str, tuple[str, ...]]] = {
    "trigger_source": {"webhook": ("webhook",), "api": ("api",),
                       SCHEDULED: (SCHEDULED,)},
    "trigger.type": {"webhook": ("webhook", "github_app", "github_oauth", "bitbucket_cloud",
                                 "bitbucket_server", "gitlab"),
                     "api": ("api",), SCHEDULED: ("schedule",)},
    # Pull requests and custom webhooks start no pipeline of the targets' push events.
    "event.name": {"webhook": ("push",), "api": ("api",), SCHEDULED: ("schedule",)},
}
RUNTIME_VALUES = frozenset({*_REF_KINDS, *SOURCE_VALUES, "schedule.name"})
# A pipeline that a named schedule trigger started.
_NAMED = ScheduleName(Pattern(".+", regex=True))
_JAVA_SPECIAL = set(".[]()*+?{}|^$\\")


class ExpressionError(Exception):
    """Not an expression of the language (a syntax error)."""


class Unsupported(Exception):
    """A condition the targets cannot test at run time; `args[0]` says why."""


@dataclass(frozen=True, slots=True)
class Ref:
    """A pipeline value known only at run time (`git.branch`, `trigger_source`, ...)."""

    name: str


# ---- the expression tree ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lit:
    value: Value


@dataclass(frozen=True, slots=True)
class Name:
    name: str  # as written: `pipeline.git.branch`, `pipeline.parameters.x`


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # not
    arg: Expr


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # and, or, ==, !=, <, <=, >, >=, starts-with
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Matches:
    arg: Expr
    regex: str  # the Java regex between the slashes


Expr = Lit | Name | Unary | Binary | Matches


@cache
def _parser() -> Lark:
    from lark import Lark  # loaded only for configs that use expressions

    return Lark.open_from_package("cicompile.frontend", "expression.lark", parser="lalr")


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _tree(node: Any) -> Expr:
    from lark import Token

    if isinstance(node, Token):
        raise ExpressionError(f"unexpected {node!s}")
    kind = str(node.data)
    kids = node.children
    if kind == "string":
        return Lit(_unquote(str(kids[0])))
    if kind == "number":
        text = str(kids[0])
        return Lit(float(text) if "." in text else int(text))
    if kind in ("true", "false"):
        return Lit(kind == "true")
    if kind == "name":
        return Name(str(kids[0]))
    if kind == "not_":
        return Unary("not", _tree(kids[0]))
    if kind in ("and_", "or_", "starts_with"):
        op = {"and_": "and", "or_": "or", "starts_with": "starts-with"}[kind]
        return Binary(op, _tree(kids[0]), _tree(kids[1]))
    if kind == "compare":
        return Binary(str(kids[1]), _tree(kids[0]), _tree(kids[2]))
    if kind == "matches":
        return Matches(_tree(kids[0]), str(kids[1])[1:-1].replace("\\/", "/"))
    raise ExpressionError(f"unexpected {kind}")


def parse(text: str) -> Expr:
    from lark.exceptions import LarkError

    try:
        return _tree(_parser().parse(text))
    except LarkError as exc:
        raise ExpressionError(str(exc).splitlines()[0]) from exc


def names(e: Expr) -> list[str]:
    match e:
        case Name(n):
            return [n]
        case Unary(_, a) | Matches(a, _):
            return names(a)
        case Binary(_, a, b):
            return names(a) + names(b)
    return []


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_text(e: Expr) -> str:
    """The expression written back (fully parenthesised where operators nest)."""
    match e:
        case Lit(v):
            if isinstance(v, bool):
                return "true" if v else "false"
            return _quote(v) if isinstance(v, str) else str(v)
        case Name(n):
            return n
        case Unary(_, a):
            return f"not {_nested(a)}"
        case Binary(op, a, b):
            return f"{_nested(a)} {op} {_nested(b)}"
        case Matches(a, rx):
            return f"{_nested(a)} matches /{rx.replace('/', chr(92) + '/')}/"
    raise AssertionError(e)


def _nested(e: Expr) -> str:
    return f"({to_text(e)})" if isinstance(e, Binary | Matches) else to_text(e)


# ---- evaluation ---------------------------------------------------------------------------

Resolve = Callable[[str], "Value | Ref"]


def truthy(v: Value) -> bool:
    if v is None or isinstance(v, bool):
        return bool(v)
    if isinstance(v, int | float):
        return not (v == 0 or v != v)
    return v != ""


def substitute(e: Expr, resolve: Resolve) -> Expr:
    """`e` with every name that `resolve` knows replaced by its value (names it maps to a
    `Ref` stay, as the run-time values they are)."""
    match e:
        case Name(n):
            v = resolve(n)
            return e if isinstance(v, Ref) else Lit(v)
        case Unary(op, a):
            return Unary(op, substitute(a, resolve))
        case Binary(op, a, b):
            return Binary(op, substitute(a, resolve), substitute(b, resolve))
        case Matches(a, rx):
            return Matches(substitute(a, resolve), rx)
    return e


def simplify(e: Expr) -> Expr:
    """Fold the parts whose values are known (after `substitute`), keeping what `e` yields:
    `and`/`or` give operand values, so only a known left operand decides them."""
    match e:
        case Unary(op, a):
            e = Unary(op, simplify(a))
        case Binary(op, a, b):
            a, b = simplify(a), simplify(b)
            if op in ("and", "or") and isinstance(a, Lit):
                return b if truthy(a.value) == (op == "and") else a
            e = Binary(op, a, b)
        case Matches(a, rx):
            e = Matches(simplify(a), rx)
    known, v = known_value(e)
    return Lit(v) if known else e


class _NotKnown(Exception):
    pass


def value(e: Expr) -> Value:
    """The value of an expression whose names are all substituted (raises _NotKnown)."""
    match e:
        case Lit(v):
            return v
        case Name():
            raise _NotKnown
        case Unary(_, a):
            return not truthy(value(a))
        case Binary("and", a, b):
            left = value(a)
            return value(b) if truthy(left) else left
        case Binary("or", a, b):
            left = value(a)
            return left if truthy(left) else value(b)
        case Binary(op, a, b):
            return _compare(op, value(a), value(b))
        case Matches(a, rx):
            v = value(a)
            return isinstance(v, str) and _fullmatch(rx, v)
    raise AssertionError(e)


def known_value(e: Expr) -> tuple[bool, Value]:
    try:
        return True, value(e)
    except _NotKnown:
        return False, None


def _fullmatch(rx: str, s: str) -> bool:
    try:
        return re.fullmatch(rx, s) is not None
    except re.error as exc:
        raise Unsupported(f"the regex /{rx}/ is not valid: {exc}") from exc


def _compare(op: str, a: Value, b: Value) -> bool:
    same_type = (isinstance(a, str) == isinstance(b, str)) and (
        isinstance(a, bool) == isinstance(b, bool)) and ((a is None) == (b is None))
    if op == "==":
        return same_type and a == b
    if op == "!=":
        return not (same_type and a == b)
    if op == "starts-with":
        return isinstance(a, str) and isinstance(b, str) and a.startswith(b)
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))
    if not numbers:
        raise Unsupported(f"`{op}` compares numbers only")
    x, y = float(a), float(b)  # type: ignore[arg-type]
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


# ---- lowering to conditions ---------------------------------------------------------------


def _java_literal(s: str) -> str:
    return "".join("\\" + c if c in _JAVA_SPECIAL else c for c in s)


def _ref_name(e: Expr) -> str | None:
    if isinstance(e, Name) and e.name.startswith("pipeline."):
        return e.name.removeprefix("pipeline.")
    return None


def _on_ref(ref: str, test: Callable[[Value], bool], pattern: Pattern | None, absent: Value
            ) -> Cond:
    """The condition "test(value of ref)"; `pattern` matches the same non-empty names."""
    if ref in _REF_KINDS:
        kind = _REF_KINDS[ref]
        here: Cond = FALSE if pattern is None else Match(kind, pattern)
        if pattern is not None and pattern.regex and pattern.text == ".*":
            here = IsKind(kind)
        # On a pipeline of the other kind the value is absent ("" or null).
        return any_of([here, all_of([negate(IsKind(kind)), Const(test(absent))])])
    if ref in SOURCE_VALUES:
        sources = []
        for source in TRIGGER_SOURCES:
            results = {test(v) for v in SOURCE_VALUES[ref][source]}
            if len(results) > 1:
                raise Unsupported(f"`pipeline.{ref}` compared with a value it takes on some"
                                  " pipelines started by a push only (its values there:"
                                  f" {', '.join(SOURCE_VALUES[ref][source])})")
            if results == {True}:
                sources.append(Trigger(source))
        return any_of(sources)
    if ref == "schedule.name":
        named: Cond = FALSE if pattern is None else ScheduleName(pattern)
        # No schedule trigger started the pipeline (a push, a `triggers` schedule): no name.
        return any_of([named, all_of([negate(_NAMED), Const(test(absent))])])
    raise Unsupported(f"`pipeline.{ref}`")


def ref_truth(ref: str) -> Cond:
    if ref in _REF_KINDS:
        return IsKind(_REF_KINDS[ref])
    if ref in SOURCE_VALUES:
        return TRUE
    if ref == "schedule.name":
        return _NAMED
    raise Unsupported(f"`pipeline.{ref}`")


def ref_equals(ref: str, other: Value | Ref, absent: Value) -> Cond:
    if isinstance(other, Ref):
        if other.name == ref:
            return TRUE
        if {ref, other.name} == set(_REF_KINDS):
            return FALSE  # one of them is always set, the other never
        raise Unsupported(f"`pipeline.{ref}` compared with `pipeline.{other.name}`")
    if ref in SOURCE_VALUES and not (isinstance(other, str) and any(
            other in values for values in SOURCE_VALUES[ref].values())):
        raise Unsupported(f"`pipeline.{ref}` compared with {other!r}")
    pattern = Pattern(other) if isinstance(other, str) and other else None
    return _on_ref(ref, lambda v: _compare("==", v, other), pattern, absent)


def ref_matches(ref: str, regex: str, absent: Value) -> Cond:
    _fullmatch(regex, "")  # a bad regex is reported, not translated
    return _on_ref(ref, lambda v: isinstance(v, str) and _fullmatch(regex, v),
                   Pattern(regex, regex=True), absent)


def ref_starts_with(ref: str, prefix: str, absent: Value) -> Cond:
    pattern = Pattern(_java_literal(prefix) + ".*", regex=True)
    return _on_ref(ref, lambda v: isinstance(v, str) and v.startswith(prefix), pattern, absent)


def lower(e: Expr) -> Cond:
    """The truth of an expression as a condition (names already substituted: only
    `pipeline.*` run-time values remain)."""
    known, v = known_value(e)
    if known:
        return Const(truthy(v))
    match e:
        case Name():
            ref = _ref_name(e)
            if ref is None:
                raise Unsupported(f"`{e.name}`")
            return ref_truth(ref)
        case Unary(_, a):
            return negate(lower(a))
        case Binary("and", a, b):
            return all_of([lower(a), lower(b)])
        case Binary("or", a, b):
            return any_of([lower(a), lower(b)])
        case Binary("==" | "!=" as op, a, b):
            c = _equality(a, b)
            return c if op == "==" else negate(c)
        case Binary("starts-with", a, Lit(str() as prefix)):
            return ref_starts_with(_ref_operand(a), prefix, None)
        case Matches(a, rx):
            return ref_matches(_ref_operand(a), rx, None)
    raise Unsupported(f"`{to_text(e)}`")


def _ref_operand(e: Expr) -> str:
    ref = _ref_name(e)
    if ref is None:
        raise Unsupported(f"`{to_text(e)}`")
    return ref


def _equality(a: Expr, b: Expr) -> Cond:
    if _ref_name(a) is None:
        a, b = b, a
    ref = _ref_operand(a)
    other_ref = _ref_name(b)
    if other_ref is not None:
        return ref_equals(ref, Ref(other_ref), None)
    known, v = known_value(b)
    if not known:
        raise Unsupported(f"`{to_text(b)}`")
    return ref_equals(ref, v, None)


# ---- logic statements (§5.6) ------------------------------------------------------------

_WHOLE_REF = re.compile(r"\s*<<\s*pipeline\.([A-Za-z][A-Za-z0-9_.\-]*)\s*>>\s*")


def _logic_value(node: YNode) -> Value | Ref:
    """A logic-statement argument: a literal, or a whole `<< pipeline.x >>` run-time value."""
    if isinstance(node, YScalar):
        if isinstance(node.value, str) or node.value is None and node.quoted:
            whole = _WHOLE_REF.fullmatch(node.as_str())
            if whole:
                return Ref(whole.group(1))
            if "<< pipeline." in node.as_str() or "<<pipeline." in node.as_str():
                raise Unsupported(f"{node.as_str()!r} (a run-time value inside a string)")
            return node.as_str()
        v = node.value
        if isinstance(v, bool | int | float) or v is None:
            return v
        return node.as_str()
    raise Unsupported("a list or mapping compared as a value")


def lower_logic(node: YNode) -> Cond:
    """A logic statement whose run-time values are written `<< pipeline.x >>`, lowered."""
    if isinstance(node, YMap) and len(node.pairs) == 1:
        key, arg = node.pairs[0]
        op = key.as_str()
        if op in ("and", "or") and isinstance(arg, YSeq) and arg.items:
            parts = [lower_logic(i) for i in arg.items]
            return all_of(parts) if op == "and" else any_of(parts)
        if op == "not":
            return negate(lower_logic(arg))
        if op == "equal" and isinstance(arg, YSeq) and arg.items:
            values = [_logic_value(i) for i in arg.items]
            return all_of(_logic_equal(values[0], v) for v in values[1:])
        if op == "matches" and isinstance(arg, YMap):
            pattern, subject = arg.get("pattern"), arg.get("value")
            if isinstance(pattern, YScalar) and subject is not None:
                rx = _logic_value(pattern)
                v = _logic_value(subject)
                if isinstance(rx, Ref) or rx is None:
                    raise Unsupported("a run-time value as a `matches` pattern")
                if isinstance(v, Ref):
                    return ref_matches(v.name, str(rx), "")
                return Const(_fullmatch(str(rx), "" if v is None else str(v)))
    if isinstance(node, YScalar):
        v = _logic_value(node)
        return ref_truth(v.name) if isinstance(v, Ref) else Const(truthy(v))
    if isinstance(node, YSeq):
        return Const(bool(node.items))
    return Const(bool(node.pairs)) if isinstance(node, YMap) and len(node.pairs) != 1 else (
        _unknown_operator(node))


def _unknown_operator(node: YNode) -> Cond:
    assert isinstance(node, YMap)
    raise Unsupported(f"the logic statement `{node.pairs[0][0].as_str()}`")


def _logic_equal(a: Value | Ref, b: Value | Ref) -> Cond:
    if isinstance(b, Ref):
        a, b = b, a
    if not isinstance(a, Ref):
        return Const(type(a) is type(b) and a == b)
    if not isinstance(b, Ref | str):
        return FALSE  # a run-time value is substituted as text: never a number or boolean
    return ref_equals(a.name, b, "")


# ---- logic values as written back ---------------------------------------------------------


def runtime_refs(node: YNode) -> list[str]:
    """The `<< pipeline.x >>` names a logic statement mentions, in order."""
    if isinstance(node, YScalar):
        return re.findall(r"<<\s*pipeline\.([A-Za-z][A-Za-z0-9_.\-]*)\s*>>", node.text)
    if isinstance(node, YSeq):
        return [n for i in node.items for n in runtime_refs(i)]
    return [n for k, v in node.pairs for n in runtime_refs(k) + runtime_refs(v)]


def is_expression(node: YNode) -> bool:
    """A string condition in the expression language (not a `<< >>` logic value)."""
    return (isinstance(node, YScalar) and isinstance(node.value, str) and not node.text.lstrip()
            .startswith("<<") and "pipeline." in node.as_str())


# ---- step guards ---------------------------------------------------------------------------

_STEP_VAR = {RefKind.BRANCH: "CIRCLE_BRANCH", RefKind.TAG: "CIRCLE_TAG"}


def _sh_single(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def shell_guard(c: Cond) -> str:
    """A POSIX sh command list that succeeds iff `c` holds inside a running job, from the
    CIRCLE_BRANCH / CIRCLE_TAG every target sets (the branch is empty on a tag pipeline)."""
    from cicompile.targets.refmatch import java_to_ere

    match c:
        case Const(v):
            return "true" if v else "false"
        case IsKind(kind):
            return f'[ {"-n" if kind is RefKind.TAG else "-z"} "${{CIRCLE_TAG:-}}" ]'
        case Match(kind, pattern):
            var = f'"${{{_STEP_VAR[kind]}:-}}"'
            if not pattern.regex:
                return f"[ {var} = {_sh_single(pattern.text)} ]"
            ere = _sh_single(java_to_ere(pattern.text))
            return f"{{ [ -n {var} ] && printf '%s\\n' {var} | grep -Eqx -e {ere}; }}"
        case Trigger() | ScheduleName():
            raise Unsupported("what started the pipeline (`pipeline.trigger_source`,"
                              " `pipeline.schedule.name`...), which running steps cannot read")
        case Not(atom):
            return "! " + shell_guard(atom)
        case And(items):
            return "{ " + " && ".join(shell_guard(i) for i in items) + "; }"
        case Or(items):
            return "{ " + " || ".join(shell_guard(i) for i in items) + "; }"
    raise AssertionError(c)


# ---- what the reader calls -----------------------------------------------------------------


def _lowered(node: YNode) -> Cond:
    if is_expression(node):
        assert isinstance(node, YScalar)
        return lower(parse(node.as_str()))
    return lower_logic(node)


def workflow_condition(m: YMap, name: str, diags: Diagnostics) -> Cond:
    """A workflow's `when`/`unless` on run-time values (what expansion left), lowered; TRUE
    (with the precise warning) for what the targets cannot test."""
    for kind in ("when", "unless"):
        node, key = m.get(kind), m.key(kind)
        if node is None or key is None:
            continue
        try:
            c = _lowered(node)
        except ExpressionError as exc:
            diags.error("invalid-condition", f"workflow {name!r}: `{kind}` is not a valid"
                        f" expression: {exc}", node.span)
            return TRUE
        except Unsupported as exc:
            diags.warning("runtime-condition", f"workflow {name!r}: `{kind}` depends on"
                          f" {exc.args[0]}, known only at run time and not testable on the"
                          " targets; the workflow is kept and runs whenever its filters allow",
                          key.span)
            return TRUE
        c = c if kind == "when" else negate(c)
        if c == FALSE:
            diags.warning("never-runs", f"workflow {name!r} can never run: its `{kind}`"
                          " condition never holds", key.span)
        if uses_trigger(c):
            diags.warning("trigger-source", f"workflow {name!r}: `{kind}`{_READS_TRIGGER}",
                          key.span)
        return c
    return TRUE


# The warning on a condition that reads what started the pipeline, after what reads it.
_READS_TRIGGER = (" reads what started the pipeline (`pipeline.trigger_source`, `.trigger.type`,"
                  " `.event.name`, `.schedule.name`); scheduled pipelines come from schedule"
                  " triggers in CircleCI's project settings: create the same schedule on the"
                  " target (`--schedule NAME=CRON` for GitHub, see docs/targets.md)")


def reads_trigger(m: YMap) -> bool:
    """A workflow (as the reader gets it) whose `when`/`unless` or an expression filter of a
    job mentions what started the pipeline (`pipeline.trigger_source`, `.trigger.type`,
    `.event.name`, `.schedule.name`), whatever the condition simplifies to."""
    texts = [m.get(k) for k in ("when", "unless")]
    jobs = m.get("jobs")
    for entry in jobs.items if isinstance(jobs, YSeq) else ():
        body = entry.pairs[0][1] if isinstance(entry, YMap) and entry.pairs else None
        texts.append(body.get("filters") if isinstance(body, YMap) else None)
    return any(n is not None and (bool(_STARTERS.intersection(runtime_refs(n))) or (
        isinstance(n, YScalar) and is_expression(n) and _STARTER_NAME.search(n.text) is not None))
        for n in texts)


_STARTERS = frozenset({*SOURCE_VALUES, "schedule.name"})
_STARTER_NAME = re.compile(
    r"\bpipeline\.(?:trigger_source|trigger\.type|event\.name|schedule\.name)\b")


def filter_expression(node: YScalar, diags: Diagnostics) -> Cond:
    """An expression `filters:` string (§5.5), lowered; TRUE (warned) when not testable."""
    try:
        c = lower(parse(node.as_str()))
        if uses_trigger(c):
            diags.warning("trigger-source", f"this expression filter{_READS_TRIGGER}",
                          node.span)
        return c
    except ExpressionError as exc:
        diags.error("invalid-condition", f"`filters` is not a valid expression: {exc}",
                    node.span)
    except Unsupported as exc:
        diags.warning("runtime-condition", f"the expression filter depends on {exc.args[0]},"
                      " known only at run time and not testable on the targets; the job is"
                      " kept as if it had no filters", node.span)
    return TRUE


__all__ = ["ExpressionError", "Unsupported", "lower", "lower_logic", "parse", "substitute",
           "to_text", "value"]
