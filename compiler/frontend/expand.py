"""CircleCI 2.1 expansion on the positioned tree (semantics §0 steps 2–5, §3.2, §5.6, §6).

`expand_config` turns a 2.1 tree into a 2.0-style one that the reader in `circleci.py`
understands: no `commands`, `executors`, top-level `parameters` or inline orbs; every job
concrete (parameters bound, executor merged, commands inlined, `when`/`unless` steps decided,
pre/post-steps spliced, matrices expanded); every workflow entry names a concrete job.

Nodes built here keep the span of the source they came from (a command's steps point into
the command, an argument into the workflow entry), so later diagnostics point at the lines
the user wrote.

Substitution is done once per instantiation of an element (job, command, executor), on the
element's body, and values inserted for a reference are never scanned again: this keeps
escapes (`\\<<`) and lexical scoping right when steps are passed down through commands.
"""

from __future__ import annotations

import enum
import itertools
import operator
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import field
from pathlib import Path

from cicompile.conditions import negate
from cicompile.diagnostics import ConfigError, Diagnostics, Span
from cicompile.frontend.expression import (
    ExpressionError,
    Ref,
    Unsupported,
    is_expression,
    known_value,
    lower_logic,
    parse,
    shell_guard,
    simplify,
    substitute,
    to_text,
    truthy,
)
from cicompile.frontend.expression import Value as ExprValue
from cicompile.frontend.orbsource import PROVIDE_HINT, OrbSources
from cicompile.frontend.yaml_loader import YMap, YNode, YScalar, YSeq
from cicompile.records import dataclass

BUILTIN_STEPS = frozenset({
    "run", "checkout", "setup_remote_docker", "save_cache", "restore_cache", "deploy",
    "store_artifacts", "store_test_results", "persist_to_workspace", "attach_workspace",
    "add_ssh_keys",
})
# Keys of a workflow job entry that are not arguments of the job (semantics §5.2).
RESERVED_ENTRY_KEYS = frozenset({
    "requires", "filters", "context", "type", "name", "matrix", "pre-steps", "post-steps",
    "serial-group", "override-with",
})
KEPT_ENTRY_KEYS = ("requires", "filters", "context", "type", "serial-group", "override-with")
PARAM_TYPES = frozenset({"string", "boolean", "integer", "enum", "env_var_name", "steps",
                         "executor"})
PIPELINE_PARAM_TYPES = frozenset({"string", "boolean", "integer", "enum"})
EXECUTOR_KEYS = ("docker", "machine", "macos", "windows", "resource_class", "shell",
                 "working_directory", "environment")
ELEMENT_DOC_KEYS = frozenset({"parameters", "description"})

# Pipeline values a running job can read from the environment every target sets (§7).
RUNTIME_ENV = {
    "git.branch": "CIRCLE_BRANCH",
    "git.tag": "CIRCLE_TAG",
    "git.revision": "CIRCLE_SHA1",
    # CircleCI has no variable for the pipeline number (CIRCLE_BUILD_NUM numbers jobs): every
    # target sets this one.
    "number": "CIRCLE_PIPELINE_NUMBER",
    "id": "CIRCLE_PIPELINE_ID",
    "project.git_url": "CIRCLE_REPOSITORY_URL",
    "git.repo_url": "CIRCLE_REPOSITORY_URL",
    "git.repo_owner": "CIRCLE_PROJECT_USERNAME",
    "git.repo_name": "CIRCLE_PROJECT_REPONAME",
}
# The same values written in the cache-key template language (§4), which targets translate.
CACHE_TEMPLATE = {"git.branch": "{{ .Branch }}", "git.revision": "{{ .Revision }}"}

MAX_COMMAND_DEPTH = 50
MAX_EXPANDED_STEPS = 100_000  # guards against exponential command fan-out

_ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = r"[A-Za-z][A-Za-z0-9_.\-]*"
_WHOLE = re.compile(rf"\s*<<\s*({_NAME})\s*>>\s*")
_TAG = re.compile(rf"\\<<|<<\s*([#^/]?)\s*({_NAME})\s*>>")
_EXPRESSION = re.compile(r"<<\s*(?:pipeline|parameters|matrix)\.")
# `<< expression >>` (§5.5): a template whose inside is more than one name.
_TEMPLATE_EXPRESSION = re.compile(r"(?<!\\)<<\s*((?:(?!>>).)+?)\s*>>")
_EXPRESSION_NAME = re.compile(r"\b(?:pipeline|parameters|matrix)\.[A-Za-z]")
_NAME_ONLY = re.compile(rf"[#^/]?\s*{_NAME}")
_TRUE_WORDS = frozenset({"true", "yes", "on", "y"})
_FALSE_WORDS = frozenset({"false", "no", "off", "n"})

# A pipeline value known only at run time travels through substitution as this marker, so
# the last pass can decide by *where* it ended up (a `run` command, a cache key, elsewhere).
_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
_MARKER = re.compile(f"{_MARK_OPEN}([^{_MARK_CLOSE}]*){_MARK_CLOSE}")


class _Miss(enum.Enum):
    NOT_A_REFERENCE = "literal"  # `<<EOF >>` and friends: text, not a template
    ERROR = "error"  # a reference that could not be resolved (already reported)


# ---- small tree helpers ----------------------------------------------------------------


def _string(text: str, span: Span) -> YScalar:
    return YScalar(text, text, span, True)


def _key(text: str, span: Span) -> YScalar:
    return YScalar(text, text, span)


def _without(m: YMap, keys: Iterable[str]) -> YMap:
    drop = set(keys)
    if not m.has_any(drop):
        return m
    return YMap(tuple((k, v) for k, v in m.pairs if k.as_str() not in drop), m.span)


def _expression_text(value: ExprValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _render_scalar(node: YScalar) -> str:
    if isinstance(node.value, bool):
        return "true" if node.value else "false"  # `yes`/`on` print as CircleCI prints them
    return node.as_str()


def _plain(node: YNode) -> Hashable:
    """A span-free canonical form, to compare and deduplicate values."""
    if isinstance(node, YScalar):
        v = node.value
        if v is None or isinstance(v, str):
            return ("str", node.as_str())
        return (type(v).__name__, node.text if isinstance(v, float) else v)
    if isinstance(node, YSeq):
        return ("seq", tuple(_plain(i) for i in node.items))
    return ("map", tuple((k.as_str(), _plain(v)) for k, v in node.pairs))


def _markers(node: YNode) -> list[str]:
    """Names of the run-time pipeline values inside `node`, in order."""
    if isinstance(node, YScalar):
        return _MARKER.findall(node.text) if _MARK_OPEN in node.text else []
    if isinstance(node, YSeq):
        return [n for i in node.items for n in _markers(i)]
    return [n for k, v in node.pairs for n in _markers(k) + _markers(v)]


def _describe(node: YNode) -> str:
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YSeq):
        return "a list"
    return f"{node.text!r}"


def _step_parts(node: YNode) -> tuple[str, YNode | None, Span] | None:
    """(name, body, span) of a step written `- name` or `- name: body`; None if neither."""
    if isinstance(node, YScalar) and isinstance(node.value, str):
        return node.value, None, node.span
    if isinstance(node, YMap) and len(node.pairs) == 1:
        key, body = node.pairs[0]
        return key.as_str(), body, key.span
    return None


def _truthy(node: YNode) -> bool | None:
    """Logic-statement truthiness (§5.6); None when it depends on a run-time value."""
    if _markers(node):
        return None
    if isinstance(node, YScalar):
        v = node.value
        if v is None or isinstance(v, bool):
            return bool(v)
        if isinstance(v, int | float):
            return not (v == 0 or v != v)  # 0 and NaN are falsy
        return node.as_str() != ""
    return bool(node.items) if isinstance(node, YSeq) else bool(node.pairs)


# ---- templates -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tag:
    sigil: str  # "" reference, "#"/"^" section start, "/" section end
    name: str
    raw: str


_Part = str | _Tag


def _tokenize(text: str) -> tuple[list[_Part], bool]:
    """Split text into literal strings and `<< name >>` tags; also say whether some `<< … >>`
    looked like a template but is not a plain reference (a newer-style expression)."""
    parts: list[_Part] = []
    expression = False
    pos = 0
    for m in _TAG.finditer(text):
        gap = text[pos:m.start()]
        expression = expression or bool(_EXPRESSION.search(gap))
        parts.append(gap)
        if m.group(0) == "\\<<":
            parts.append("<<")
        else:
            parts.append(_Tag(m.group(1), m.group(2), m.group(0)))
        pos = m.end()
    tail = text[pos:]
    expression = expression or bool(_EXPRESSION.search(tail))
    parts.append(tail)
    return [p for p in parts if p != ""], expression


def _is_expression(inner: str) -> bool:
    """Whether the inside of a `<< … >>` is an expression (§5.5): it reads a `pipeline.`,
    `parameters.` or `matrix.` value and is more than one name (a section tag's included)."""
    return _EXPRESSION_NAME.search(inner) is not None and not _NAME_ONLY.fullmatch(inner)


def _render_plan(text: str) -> tuple[bool, list[_Part], bool]:
    """What `render` does with `text` whatever the scope: whether some `<< … >>` in it is an
    expression `template_expression` would evaluate (then `render` evaluates them first and
    tokenizes the result), else the text's tokens and expression flag (`_tokenize`)."""
    if _EXPRESSION_NAME.search(text):
        for m in _TEMPLATE_EXPRESSION.finditer(text):
            inner = m.group(1)
            if _is_expression(inner):
                return True, [], False
    parts, expression = _tokenize(text)
    return False, parts, expression


def _section_end(parts: list[_Part], start: int) -> int | None:
    opening = parts[start]
    assert isinstance(opening, _Tag)
    depth = 0
    for i in range(start + 1, len(parts)):
        p = parts[i]
        if isinstance(p, _Tag) and p.name == opening.name:
            if p.sigil in ("#", "^"):
                depth += 1
            elif p.sigil == "/":
                if depth == 0:
                    return i
                depth -= 1
    return None


# ---- namespaces ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegistryOrb:
    """An orb imported from the registry (`ns/orb@ver`): its source is not available."""

    name: str
    ref: str
    entry: tuple[YScalar, YNode]  # the `orbs:` entry, copied to the output


@dataclass(eq=False)
class Definition:
    """A command, executor or job, with the namespace its body resolves names in."""

    name: str  # qualified: `cmd` or `orb/cmd`
    node: YNode
    span: Span
    ns: Namespace


@dataclass(eq=False)
class Namespace:
    """The config itself, or one inline orb (whose elements see only the orb, §6.5)."""

    prefix: str
    pipeline: Mapping[str, YNode] | None  # pipeline parameters; not visible in orbs (§5.8)
    parent: Namespace | None = None
    commands: dict[str, Definition] = field(default_factory=dict)
    executors: dict[str, Definition] = field(default_factory=dict)
    jobs: dict[str, Definition] = field(default_factory=dict)
    orbs: dict[str, Namespace | RegistryOrb] = field(default_factory=dict)

    def orb(self, name: str) -> Namespace | RegistryOrb | None:
        found = self.orbs.get(name)
        if found is None and self.parent is not None:
            return self.parent.orb(name)  # an inline orb may use the config's imports
        return found

    def lookup(self, kind: str, name: str) -> Definition | RegistryOrb | None:
        table = getattr(self, kind)
        if name in table:  # `orb/job` of an expanded config is an ordinary job now
            found: Definition = table[name]
            return found
        if "/" in name:
            orb_name, element = name.split("/", 1)
            orb = self.orb(orb_name)
            if orb is None or isinstance(orb, RegistryOrb):
                return orb
            elements: dict[str, Definition] = getattr(orb, kind)
            return elements.get(element)
        return None

    def registry_orbs(self) -> list[RegistryOrb]:
        """Registry orbs imported here or by inline orbs inside (first name wins), so that
        the output still says where `orb/element` placeholders come from."""
        out: dict[str, RegistryOrb] = {}
        for name, orb in self.orbs.items():
            if isinstance(orb, RegistryOrb):
                out.setdefault(name, orb)
        for orb in self.orbs.values():
            if isinstance(orb, Namespace):
                for inner in orb.registry_orbs():
                    out.setdefault(inner.name, inner)
        return list(out.values())


@dataclass(frozen=True, slots=True)
class Scope:
    """What `<< … >>` can see at one place (§6.3)."""

    params: Mapping[str, YNode] | None = None  # element parameters (None outside elements)
    matrix: Mapping[str, YNode] | None = None  # only in a workflow job entry
    pipeline: Mapping[str, YNode] | None = None  # None inside orbs
    owner: str = "the config"


@dataclass(frozen=True, slots=True)
class ParamDecl:
    name: str
    type: str
    default: YNode | None  # coerced; None means required
    enum: tuple[str, ...]
    span: Span


@dataclass(eq=False)
class _Invocation:
    """One instance of a workflow job entry (one per matrix combination)."""

    job: str  # as written in the workflow
    name: str  # the invocation name (what `requires` refers to)
    span: Span
    kept: list[tuple[YScalar, YNode]]  # entry keys carried to the output
    defn: Definition | None = None
    values: dict[str, YNode] | None = None
    pre: list[YNode] = field(default_factory=list)
    post: list[YNode] = field(default_factory=list)
    key: Hashable = None
    concrete: str = ""


@dataclass(eq=False)
class _Variant:
    """One concrete job to emit: a definition with bound parameters and pre/post-steps."""

    key: Hashable
    defn: Definition
    values: Mapping[str, YNode]
    pre: list[YNode] = field(default_factory=list)
    post: list[YNode] = field(default_factory=list)
    unused: bool = False  # no workflow invokes it


@dataclass(eq=False)
class _WorkflowPlan:
    name_key: YScalar
    node: YMap
    entries: list[_Invocation | YNode]  # a YNode is an entry kept as written
    aliases: dict[str, list[str]]  # matrix alias → instance names
    members: dict[str, str] = field(default_factory=dict)  # job group member → its group


class _Expander:
    def __init__(self, diags: Diagnostics) -> None:
        self.diags = diags
        self.budget = MAX_EXPANDED_STEPS
        self._decls: dict[int, dict[str, ParamDecl]] = {}
        # id(collection) -> (it, whether some scalar or key in it is a `<< … >>` template):
        # the same bodies are substituted once per invocation.
        self._templated: dict[int, tuple[YNode, bool]] = {}
        # text -> its `render` plan (`_render_plan`): the same texts are rendered once per
        # invocation of the element they are in.
        self._plans: dict[str, tuple[bool, list[_Part], bool]] = {}
        self.root = Namespace(prefix="", pipeline={})
        self.orb_sources: OrbSources | None = None  # registry orbs on disk (--orb-dir)
        self._orb_chain: tuple[str, ...] = ()  # registry orbs being read (import cycles)
        self.marked = False  # a run-time pipeline value was referenced (`lookup` marked it)

    # ---- budget ------------------------------------------------------------------------

    def spend(self, n: int, span: Span) -> None:
        self.budget -= n
        if self.budget < 0:
            self.diags.error("expansion-limit", f"expanding commands and matrices produces more"
                             f" than {MAX_EXPANDED_STEPS} steps; refusing to go on", span)
            raise ConfigError

    # ---- substitution ------------------------------------------------------------------

    def subst(self, node: YNode, scope: Scope) -> YNode:
        # Hot (every parameterised body, per invocation): a new node only when a part changed.
        if isinstance(node, YScalar):
            return self.subst_scalar(node, scope)
        if not self.templated(node):
            return node
        subst = self.subst
        # Scalar children without a template (most) are kept here, as subst_scalar and
        # subst_key would keep them, without a call each.
        if isinstance(node, YSeq):
            items = [i if type(i) is YScalar and ("<<" not in i.text
                                                  or not isinstance(i.value, str))
                     else subst(i, scope) for i in node.items]
            if all(map(operator.is_, items, node.items)):
                return node
            return YSeq(tuple(items), node.span)
        subst_key = self.subst_key
        keys_changed = changed = False
        pairs = []
        for k, v in node.pairs:
            k2 = k if "<<" not in k.text else subst_key(k, scope)
            v2 = v if type(v) is YScalar and ("<<" not in v.text
                                              or not isinstance(v.value, str)) else subst(v, scope)
            if k2 is not k:
                keys_changed = changed = True
            elif v2 is not v:
                changed = True
            pairs.append((k2, v2))
        if not changed:
            return node
        return YMap(tuple(pairs), node.span) if keys_changed else node.with_values(pairs)

    def templated(self, node: YNode) -> bool:
        """Whether `subst` could change something in `node` (see subst_scalar, subst_key)."""
        if isinstance(node, YScalar):
            return isinstance(node.value, str) and "<<" in node.text
        known = self._templated.get(id(node))
        if known is not None and known[0] is node:
            return known[1]
        templated = self.templated
        found = False
        # Scalar children (most of them) tested here, as above, instead of a call each.
        if isinstance(node, YSeq):
            for i in node.items:
                if (("<<" in i.text and isinstance(i.value, str)) if type(i) is YScalar
                        else templated(i)):
                    found = True
                    break
        else:
            for k, v in node.pairs:
                if (("<<" in k.text and isinstance(k.value, str))
                        or (("<<" in v.text and isinstance(v.value, str))
                            if type(v) is YScalar else templated(v))):
                    found = True
                    break
        self._templated[id(node)] = (node, found)
        return found

    def subst_key(self, key: YScalar, scope: Scope) -> YScalar:
        if not isinstance(key.value, str) or "<<" not in key.text:
            return key
        text = self.render(key.text, scope, key.span)
        return key if text == key.text else _key(text, key.span)

    def subst_scalar(self, node: YScalar, scope: Scope) -> YNode:
        if not isinstance(node.value, str) or "<<" not in node.text:
            return node
        whole_expression = _TEMPLATE_EXPRESSION.fullmatch(node.text.strip())
        if whole_expression:
            # A value that is one expression keeps the type of its result, like a reference.
            known, value = self.template_expression(whole_expression.group(1), scope,
                                                    node.span)
            if known:
                return YScalar(value, _expression_text(value), node.span,
                               isinstance(value, str))
        whole = _WHOLE.fullmatch(node.text)
        if whole:
            # A value that is exactly one reference keeps the referenced value's type (§6.3).
            found = self.lookup(whole.group(1), scope, node.span)
            if found is _Miss.ERROR:
                return _string("", node.span)
            if found is not _Miss.NOT_A_REFERENCE:
                assert not isinstance(found, _Miss)
                return found
        text = self.render(node.text, scope, node.span)
        return node if text == node.text else _string(text, node.span)

    def scope_value(self, name: str, scope: Scope, span: Span) -> ExprValue | Ref:
        """A name in an expression: a parameter's value; run-time values (and names that are
        no references) stay as they are."""
        head = name.partition(".")[0]
        if head not in ("pipeline", "parameters", "matrix") or (
                head == "pipeline" and not name.startswith("pipeline.parameters.")):
            return Ref(name)
        found = self.lookup(name, scope, span)
        if isinstance(found, YScalar):
            v = found.value
            return found.as_str() if v is None or isinstance(v, str) else v
        return Ref(name)  # an error was reported, or a list/map: not a value here

    def template_expression(self, inner: str, scope: Scope, span: Span
                            ) -> tuple[bool, ExprValue]:
        """`<< expression >>` (§5.5) when its values are known now (parameters, literals)."""
        if not _is_expression(inner):
            return False, None
        try:
            expr = substitute(parse(inner), lambda n: self.scope_value(n, scope, span))
            return known_value(expr)
        except (ExpressionError, Unsupported):
            return False, None  # not an expression after all, or one kept as text (warned)

    def render_expressions(self, text: str, scope: Scope, span: Span) -> str:
        def one(m: re.Match[str]) -> str:
            known, value = self.template_expression(m.group(1), scope, span)
            return _expression_text(value) if known else m.group(0)

        return _TEMPLATE_EXPRESSION.sub(one, text)

    def render(self, text: str, scope: Scope, span: Span) -> str:
        plan = self._plans.get(text)
        if plan is None:
            plan = self._plans[text] = _render_plan(text)
        evaluate, parts, expression = plan
        if evaluate:
            text = self.render_expressions(text, scope, span)
            parts, expression = _tokenize(text)
        if expression:
            self.diags.warning("template-expression", "a `<< … >>` expression that depends on"
                               " values known only at run time (or is no valid expression) is"
                               " not evaluated; it is kept as literal text", span)
        return self.render_parts(parts, scope, span)

    def render_parts(self, parts: list[_Part], scope: Scope, span: Span) -> str:
        out: list[str] = []
        i = 0
        while i < len(parts):
            p = parts[i]
            i += 1
            if isinstance(p, str):
                out.append(p)
                continue
            found = self.lookup(p.name, scope, span) if p.sigil != "/" else _Miss.NOT_A_REFERENCE
            if found is _Miss.NOT_A_REFERENCE:
                out.append(p.raw)
            elif p.sigil in ("#", "^"):
                out.append(self.render_section(parts, i - 1, found, scope, span))
                end = _section_end(parts, i - 1)
                i = len(parts) if end is None else end + 1
            elif not isinstance(found, _Miss):
                out.append(self.embed(found, p, span))
        return "".join(out)

    def render_section(self, parts: list[_Part], start: int, value: YNode | _Miss,
                       scope: Scope, span: Span) -> str:
        """Legacy mustache sections `<<# p >>…<</ p >>` / `<<^ p >>…<</ p >>` (§10.8)."""
        opening = parts[start]
        assert isinstance(opening, _Tag)
        end = _section_end(parts, start)
        if end is None:
            self.diags.error("invalid-template", f"`{opening.raw}` has no closing"
                             f" `<</{opening.name}>>`", span)
            return ""
        truth = False if isinstance(value, _Miss) else _truthy(value)
        if truth is None:
            self.diags.warning("runtime-condition", f"section `{opening.raw}` depends on a value"
                               " known only at run time; its text is kept", span)
            truth = opening.sigil == "#"
        if truth != (opening.sigil == "#"):
            return ""
        return self.render_parts(parts[start + 1:end], scope, span)

    def embed(self, value: YNode, tag: _Tag, span: Span) -> str:
        if isinstance(value, YScalar):
            return _render_scalar(value)
        self.diags.error("invalid-parameter", f"`{tag.raw}` is {_describe(value)}; it can only"
                         " be used as a whole value, not inside a string", span)
        return ""

    def lookup(self, name: str, scope: Scope, span: Span) -> YNode | _Miss:
        head, _, rest = name.partition(".")
        if head == "parameters" and rest:
            why = (f"there are no element parameters in {scope.owner}" if scope.params is None
                   else f"{scope.owner} declares no parameter {rest!r}")
            return self.lookup_in(scope.params, rest, name, span, why)
        if head == "matrix" and rest:
            return self.lookup_in(scope.matrix, rest, name, span,
                                  "`<< matrix.* >>` is only valid in a matrix job invocation"
                                  if scope.matrix is None else f"the matrix has no {rest!r}")
        if head != "pipeline" or not rest:
            return _Miss.NOT_A_REFERENCE
        sub, _, param = rest.partition(".")
        if sub == "parameters" and param:
            why = ("pipeline parameters are not visible inside orbs" if scope.pipeline is None
                   else f"no pipeline parameter {param!r} is declared")
            return self.lookup_in(scope.pipeline, param, name, span, why)
        self.marked = True
        marker = f"{_MARK_OPEN}{rest}{_MARK_CLOSE}"
        return _string(marker, span)

    def lookup_in(self, table: Mapping[str, YNode] | None, key: str, name: str, span: Span,
                  why: str) -> YNode | _Miss:
        if table is not None and key in table:
            return table[key]
        self.diags.error("undeclared-parameter", f"`<< {name} >>`: {why}", span)
        return _Miss.ERROR

    # ---- parameters --------------------------------------------------------------------

    def decls(self, node: YNode | None, what: str, scope: Scope, *, pipeline: bool = False
              ) -> dict[str, ParamDecl]:
        if node is None:
            return {}
        cached = self._decls.get(id(node))
        if cached is not None:
            return cached
        out: dict[str, ParamDecl] = {}
        if not isinstance(node, YMap):
            self.diags.error("invalid-parameter-declaration",
                             f"`parameters` of {what} must be a mapping", node.span)
        else:
            for k, v in node.pairs:
                decl = self.decl(k, v, what, scope, pipeline)
                if decl is not None:
                    out[decl.name] = decl
        self._decls[id(node)] = out
        return out

    def decl(self, key: YScalar, node: YNode, what: str, scope: Scope, pipeline: bool
             ) -> ParamDecl | None:
        name = key.as_str()
        allowed = PIPELINE_PARAM_TYPES if pipeline else PARAM_TYPES
        tnode = node.get("type") if isinstance(node, YMap) else None
        ptype = tnode.as_str() if isinstance(tnode, YScalar) else ""
        if not isinstance(node, YMap) or ptype not in allowed:
            self.diags.error("invalid-parameter-declaration", f"parameter {name!r} of {what}"
                             f" needs a `type`, one of: {', '.join(sorted(allowed))}",
                             (tnode or node).span)
            return None
        enum_node = node.get("enum")
        enum_values: tuple[str, ...] = ()
        if ptype == "enum":
            if not isinstance(enum_node, YSeq) or not enum_node.items or not all(
                isinstance(i, YScalar) for i in enum_node.items
            ):
                self.diags.error("invalid-parameter-declaration", f"enum parameter {name!r} of"
                                 f" {what} needs an `enum` list of values", node.span)
                return None
            enum_values = tuple(_render_scalar(i) for i in enum_node.items
                                if isinstance(i, YScalar))
        decl = ParamDecl(name, ptype, None, enum_values, key.span)
        default = node.get("default")
        if default is None:
            if pipeline:
                self.diags.error("invalid-parameter-declaration", f"pipeline parameter {name!r}"
                                 " needs a `default`", key.span)
                return None
            return decl
        # Defaults may use pipeline parameters (never other element parameters).
        coerced = self.coerce(decl, self.subst(default, scope), f"the default of {what}")
        return None if coerced is None else ParamDecl(name, ptype, coerced, enum_values, key.span)

    def coerce(self, decl: ParamDecl, value: YNode, what: str) -> YNode | None:
        """Check `value` against the declared type; return it in canonical form."""
        t = decl.type
        if t == "steps":
            if isinstance(value, YSeq):
                return value
            if isinstance(value, YScalar) and value.value is None:
                return YSeq((), value.span)
            return self.bad_value(decl, value, what, "a list of steps")
        if t == "executor":
            if (isinstance(value, YScalar) and isinstance(value.value, str)) or (
                isinstance(value, YMap) and "name" in value
            ):
                return value
            return self.bad_value(decl, value, what, "an executor name or {name: …, …}")
        if not isinstance(value, YScalar):
            return self.bad_value(decl, value, what, f"a {t} value")
        if _markers(value):
            return value  # a run-time pipeline value: its type can only be checked then
        return self.coerce_scalar(decl, value, what)

    def coerce_scalar(self, decl: ParamDecl, value: YScalar, what: str) -> YNode | None:
        t, v = decl.type, value.value
        if t == "boolean":
            if isinstance(v, bool):
                return YScalar(v, "true" if v else "false", value.span)
            return self.bad_value(decl, value, what, "true or false")
        if t == "integer":
            if isinstance(v, int) and not isinstance(v, bool):
                return value
            return self.bad_value(decl, value, what, "an integer")
        if isinstance(v, bool):
            return self.bad_value(decl, value, what, "a string (quote YAML booleans)")
        text = value.as_str()
        if t == "enum" and text not in decl.enum:
            return self.bad_value(decl, value, what, f"one of: {', '.join(decl.enum)}")
        if t == "env_var_name" and not _ENV_VAR_NAME.fullmatch(text):
            return self.bad_value(decl, value, what, "an environment variable name")
        return _string(text, value.span)

    def bad_value(self, decl: ParamDecl, value: YNode, what: str, expected: str
                  ) -> YNode | None:
        """Report a value that does not fit its parameter; None, for callers to return."""
        self.diags.error("invalid-parameter", f"parameter {decl.name!r} ({decl.type}) of {what}"
                         f" must be {expected}, not {_describe(value)}", value.span)
        return None

    def bind(self, defn: Definition, args: list[tuple[YScalar, YNode]], span: Span,
             what: str) -> dict[str, YNode] | None:
        """Arguments + defaults → parameter values; None (with errors) when invalid."""
        decls = self.decls(defn.node.get("parameters") if isinstance(defn.node, YMap) else None,
                           what, _defaults_scope(defn))
        ok = True
        given: dict[str, YNode] = {}
        for k, v in args:
            name = k.as_str()
            if name not in decls:
                self.diags.error("unknown-parameter", f"{what} has no parameter {name!r}"
                                 f" (declared: {', '.join(decls) or 'none'})", k.span)
                ok = False
            else:
                given[name] = v
        values: dict[str, YNode] = {}
        for d in decls.values():
            value = self.coerce(d, given[d.name], what) if d.name in given else d.default
            if d.name not in given and d.default is None:
                self.diags.error("missing-parameter", f"{what} needs the parameter {d.name!r}"
                                 " (it has no default)", span)
            if value is None:
                ok = False
            else:
                values[d.name] = value
        return values if ok else None

    def defaults(self, defn: Definition) -> dict[str, YNode] | None:
        """Parameter values of an element used without arguments; None if one is required."""
        if not isinstance(defn.node, YMap):
            return None
        decls = self.decls(defn.node.get("parameters"), f"job {defn.name!r}",
                           _defaults_scope(defn))
        if any(d.default is None for d in decls.values()):
            return None
        return {d.name: d.default for d in decls.values() if d.default is not None}

    def args(self, body: YNode | None, what: str) -> list[tuple[YScalar, YNode]] | None:
        if body is None or (isinstance(body, YScalar) and body.value is None):
            return []
        if isinstance(body, YMap):
            return list(body.pairs)
        self.diags.error("invalid-type", f"the arguments of {what} must be a mapping, not"
                         f" {_describe(body)}", body.span)
        return None

    # ---- pipeline parameters -----------------------------------------------------------

    def pipeline_values(self, node: YNode | None, given: Mapping[str, str]
                        ) -> dict[str, YNode]:
        decls = self.decls(node, "the pipeline", Scope(), pipeline=True)
        for name in given:
            if name not in decls:
                self.diags.error("unknown-parameter", f"pipeline parameter {name!r} (given on the"
                                 " command line) is not declared under top-level `parameters`",
                                 node.span if node is not None else None)
        values: dict[str, YNode] = {}
        for d in decls.values():
            # After an invalid command-line value, go on with the default: one error, not more.
            value = (self.from_text(d, given[d.name]) if d.name in given else None) or d.default
            if value is not None:
                values[d.name] = value
        return values

    def from_text(self, decl: ParamDecl, text: str) -> YNode | None:
        """A pipeline parameter given as text (`--param name=value`), typed by its declaration."""
        value: YScalar | None = _string(text, decl.span)
        if decl.type == "boolean":
            word = text.strip().lower()
            value = (YScalar(word in _TRUE_WORDS, "true" if word in _TRUE_WORDS else "false",
                             decl.span) if word in _TRUE_WORDS | _FALSE_WORDS else None)
        elif decl.type == "integer":
            value = (YScalar(int(text), text.strip(), decl.span)
                     if re.fullmatch(r"\s*[-+]?\d+\s*", text) else None)
        elif decl.type == "enum" and text not in decl.enum:
            value = None
        if value is None:
            self.diags.error("invalid-parameter", f"pipeline parameter {decl.name!r} is"
                             f" {decl.type}; {text!r} (given on the command line) is not valid",
                             decl.span)
        return value

    # ---- namespaces --------------------------------------------------------------------

    def namespace(self, m: YMap, prefix: str, pipeline: Mapping[str, YNode] | None,
                  parent: Namespace | None) -> Namespace:
        ns = Namespace(prefix=prefix, pipeline=pipeline, parent=parent)
        for kind in ("commands", "executors", "jobs"):
            table = m.get(kind)
            if table is None:
                continue
            if not isinstance(table, YMap):
                self.diags.error("invalid-type", f"`{kind}` must be a mapping", table.span)
                continue
            target: dict[str, Definition] = getattr(ns, kind)
            for k, v in table.pairs:
                target[k.as_str()] = Definition(prefix + k.as_str(), v, k.span, ns)
        orbs = m.get("orbs")
        if isinstance(orbs, YMap):
            for k, v in orbs.pairs:
                if isinstance(v, YMap):
                    ns.orbs[k.as_str()] = self.namespace(v, f"{prefix}{k.as_str()}/", None, ns)
                else:  # the version may be a pipeline parameter (§6.7)
                    ref = self.subst(v, Scope(pipeline=pipeline)) if pipeline is not None else v
                    ns.orbs[k.as_str()] = (self.registry_orb(k, ref, prefix)
                                           or RegistryOrb(k.as_str(), _describe(ref), (k, ref)))
        elif orbs is not None:
            self.diags.error("invalid-type", "`orbs` must be a mapping", orbs.span)
        return ns

    def registry_orb(self, key: YScalar, ref: YNode, prefix: str) -> Namespace | None:
        """A registry orb whose source is in --orb-dir, expanded like an inline orb (§6.7):
        its elements see only the orb itself and the orbs it imports."""
        if self.orb_sources is None or not isinstance(ref, YScalar):
            return None
        name = ref.as_str().strip()
        if name in self._orb_chain:
            chain = " -> ".join((*self._orb_chain, name))
            self.diags.error("orb-source", f"orb {name!r} imports itself ({chain})", ref.span)
            return None
        source = self.orb_sources.load(name, ref.span)
        if source is None:
            return None
        self._orb_chain = (*self._orb_chain, name)
        try:
            return self.namespace(source, f"{prefix}{key.as_str()}/", None, None)
        finally:
            self._orb_chain = self._orb_chain[:-1]

    # ---- logic statements --------------------------------------------------------------

    def logic(self, node: YNode) -> bool | None:
        """Evaluate a logic statement (§5.6); None when it needs run-time values."""
        if isinstance(node, YMap) and len(node.pairs) == 1:
            key, arg = node.pairs[0]
            op = key.as_str()
            if op in ("and", "or"):
                return self.logic_and_or(op, arg, key.span)
            if op == "not":
                value = self.logic(arg)
                return None if value is None else not value
            if op == "equal":
                return self.logic_equal(arg, key.span)
            if op == "matches":
                return self.logic_matches(arg, key.span)
        return _truthy(node)

    def logic_and_or(self, op: str, arg: YNode, span: Span) -> bool | None:
        if not isinstance(arg, YSeq) or not arg.items:
            self.diags.error("invalid-condition", f"`{op}` needs a non-empty list", span)
            return False
        values = [self.logic(i) for i in arg.items]
        decisive = op == "or"  # the value that settles `or` (True) or `and` (False)
        if decisive in values:
            return decisive
        return None if None in values else not decisive

    def logic_equal(self, arg: YNode, span: Span) -> bool | None:
        if not isinstance(arg, YSeq) or not arg.items:
            self.diags.error("invalid-condition", "`equal` needs a non-empty list", span)
            return False
        if any(_markers(i) for i in arg.items):
            return None
        first = _plain(arg.items[0])
        return all(_plain(i) == first for i in arg.items[1:])

    def logic_matches(self, arg: YNode, span: Span) -> bool | None:
        pattern = arg.get("pattern") if isinstance(arg, YMap) else None
        value = arg.get("value") if isinstance(arg, YMap) else None
        if not isinstance(pattern, YScalar) or not isinstance(value, YScalar):
            self.diags.error("invalid-condition", "`matches` needs `pattern` and `value`", span)
            return False
        if _markers(value) or _markers(pattern):
            return None
        try:
            return re.fullmatch(pattern.as_str(), _render_scalar(value)) is not None
        except re.error as exc:
            self.diags.error("invalid-condition", f"invalid pattern {pattern.as_str()!r}: {exc}",
                             pattern.span)
            return False

    def runtime_names(self, node: YNode) -> str:
        names = dict.fromkeys(_markers(node))
        return ", ".join(f"`pipeline.{n}`" for n in names) or "a run-time value"

    # ---- steps -------------------------------------------------------------------------

    def resolve_steps(self, items: Iterable[YNode], ns: Namespace, stack: tuple[str, ...]
                      ) -> list[YNode]:
        out: list[YNode] = []
        for item in items:
            out.extend(self.resolve_step(item, ns, stack))
        return out

    def resolve_step(self, node: YNode, ns: Namespace, stack: tuple[str, ...]) -> list[YNode]:
        """One (already substituted) step → the built-in steps it stands for."""
        if isinstance(node, YSeq):  # `- << parameters.steps >>`: spliced like `- steps:`
            return self.resolve_steps(node.items, ns, stack)
        parts = _step_parts(node)
        if parts is None:
            return [node]  # malformed: the reader reports it
        name, body, span = parts
        self.spend(1, span)
        if name == "steps":
            return self.splice(body, ns, stack, span)
        if name in ("when", "unless"):
            return self.conditional(name, body, ns, stack, span)
        found = ns.lookup("commands", name)
        # Inside a command that overrides a built-in, the same name means the built-in.
        if isinstance(found, Definition) and not (name in BUILTIN_STEPS and found.name in stack):
            return self.invoke(found, body, stack, span)
        if found is None and "/" in name:
            orb = name.split("/", 1)[0]
            why = (f"the orb {orb!r} has no command {name.split('/', 1)[1]!r}" if ns.orb(orb)
                   else f"no orb {orb!r} is imported under `orbs`")
            self.diags.error("unknown-command", f"step `{name}`: {why}", span)
            return []
        return [node]  # a built-in step, or a registry orb's command (a placeholder later)

    def splice(self, body: YNode | None, ns: Namespace, stack: tuple[str, ...], span: Span
               ) -> list[YNode]:
        if body is None or (isinstance(body, YScalar) and body.value is None):
            return []
        if not isinstance(body, YSeq):
            self.diags.error("invalid-type", f"`steps` must be a list of steps, not"
                             f" {_describe(body)}", body.span)
            return []
        return self.resolve_steps(body.items, ns, stack)

    def conditional(self, kind: str, body: YNode | None, ns: Namespace, stack: tuple[str, ...],
                    span: Span) -> list[YNode]:
        """A `when`/`unless` step (§3.2), decided now from parameters."""
        if not isinstance(body, YMap) or "condition" not in body:
            self.diags.error("missing-key", f"a `{kind}` step needs `condition` and `steps`",
                             span)
            return []
        condition = body.get("condition")
        assert condition is not None
        value = self.logic(condition)
        guard = None
        if value is None:
            guard = self.step_guard(kind, condition, span)
        elif value != (kind == "when"):
            return []
        steps = body.get("steps")
        if isinstance(steps, YMap):
            steps = YSeq((steps,), steps.span)  # the schema allows a single step
        out = self.splice(steps, ns, stack, span)
        return out if guard is None else [self.guarded(step, guard, kind) for step in out]

    def step_guard(self, kind: str, condition: YNode, span: Span) -> str | None:
        """The shell test standing for a step condition on run-time values (None: warned)."""
        try:
            cond = lower_logic(_Finalizer(self.diags).node(condition, "label"))
            return shell_guard(cond if kind == "when" else negate(cond))
        except Unsupported as exc:
            self.diags.warning("runtime-condition", f"the condition of this `{kind}` step uses"
                               f" {self.runtime_names(condition)}, known only at run time"
                               f" ({exc.args[0]} cannot be tested in a job); its steps are kept"
                               " unconditionally", span)
            return None

    def guarded(self, step: YNode, guard: str, kind: str) -> YNode:
        """A step that runs only when `guard` succeeds: a `run` command inside `if`."""
        parts = _step_parts(step)
        name, body, _ = parts if parts is not None else ("", None, step.span)
        command = body.get("command") if isinstance(body, YMap) else body
        plain_shell = not (isinstance(body, YMap) and "shell" in body)
        if (name in ("run", "deploy") and isinstance(step, YMap) and isinstance(command, YScalar)
                and plain_shell and not command.as_str().startswith("#!")):
            text = f"if {guard}; then\n{command.as_str().rstrip(chr(10))}\nfi\n"
            new_command = _string(text, command.span)
            if isinstance(body, YMap):
                pairs = [(k, new_command if k.as_str() == "command" else v)
                         for k, v in body.pairs]
                if "name" not in body:  # the name CircleCI derives from the command, unwrapped
                    pairs.insert(0, (_key("name", command.span),
                                     _string(command.as_str(), command.span)))
                new_body: YNode = YMap(tuple(pairs), body.span)
            else:
                new_body = YMap(((_key("name", command.span), command),
                                 (_key("command", command.span), new_command)), step.span)
            return YMap(((step.pairs[0][0], new_body),), step.span)
        self.diags.warning("runtime-condition", f"a `{name or 'malformed'}` step under a `{kind}`"
                           " condition known only at run time is kept unconditionally (only"
                           " `run` steps in the default shell can be guarded)", step.span)
        return step

    def invoke(self, cmd: Definition, body: YNode | None, stack: tuple[str, ...], span: Span
               ) -> list[YNode]:
        if cmd.name in stack or len(stack) >= MAX_COMMAND_DEPTH:
            chain = " -> ".join((*stack, cmd.name))
            self.diags.error("recursive-command", f"command {cmd.name!r} invokes itself"
                             f" ({chain})", span)
            return []
        what = f"command {cmd.name!r}"
        args = self.args(body, what)
        values = None if args is None else self.bind(cmd, args, span, what)
        if values is None:
            return []
        if not isinstance(cmd.node, YMap) or not isinstance(cmd.node.get("steps"), YSeq):
            self.diags.error("missing-key", f"{what} needs a `steps` list",
                             cmd.node.span if isinstance(cmd.node, YMap) else cmd.span)
            return []
        scope = Scope(params=values, pipeline=cmd.ns.pipeline, owner=what)
        steps = self.subst(_without(cmd.node, ELEMENT_DOC_KEYS), scope)
        assert isinstance(steps, YMap)
        items = steps.get("steps")
        assert isinstance(items, YSeq)
        return self.resolve_steps(items.items, cmd.ns, (*stack, cmd.name))

    # ---- executors and jobs ------------------------------------------------------------

    def apply_executor(self, job: YMap, ns: Namespace, job_name: str) -> YMap:
        """Replace `executor:` by the executor's keys; the job's own keys win (§2.5)."""
        ref = job.get("executor")
        key = job.key("executor")
        if ref is None or key is None:
            return job
        name_node = ref.get("name") if isinstance(ref, YMap) else ref
        if not isinstance(name_node, YScalar) or not isinstance(name_node.value, str):
            self.diags.error("invalid-type", f"`executor` of job {job_name!r} must be a name or"
                             " {name: …, …}", ref.span)
            return _without(job, ["executor"])
        name = name_node.as_str()
        found = ns.lookup("executors", name)
        if isinstance(found, RegistryOrb):
            self.diags.warning("unsupported-orb", f"job {job_name!r} uses the executor {name!r}"
                               f" of the orb {found.name!r} ({found.ref}), whose source is not"
                               " available; the job runs on the target's default host;"
                               f" {PROVIDE_HINT}",
                               key.span)
            return _without(job, ["executor"])
        if found is None:
            self.diags.error("unknown-executor", f"job {job_name!r} uses the executor {name!r},"
                             " which is not defined under `executors`", name_node.span)
            return _without(job, ["executor"])
        what = f"executor {found.name!r}"
        args = [(k, v) for k, v in ref.pairs if k.as_str() != "name"] if isinstance(
            ref, YMap) else []
        values = self.bind(found, args, name_node.span, what)
        if values is None or not isinstance(found.node, YMap):
            return _without(job, ["executor"])
        body = self.subst(_without(found.node, ELEMENT_DOC_KEYS),
                          Scope(params=values, pipeline=found.ns.pipeline, owner=what))
        assert isinstance(body, YMap)
        return _merge_executor(job, body)

    def expand_job(self, defn: Definition, values: Mapping[str, YNode], pre: list[YNode],
                   post: list[YNode]) -> YNode:
        if not isinstance(defn.node, YMap):
            return defn.node  # the reader reports the wrong type
        what = f"job {defn.name!r}"
        scope = Scope(params=values, pipeline=defn.ns.pipeline, owner=what)
        body = _without(defn.node, ELEMENT_DOC_KEYS)
        pairs: list[tuple[YScalar, YNode]] = []
        for k, v in body.pairs:
            if k.as_str() != "steps":
                pairs.append((self.subst_key(k, scope), self.subst(v, scope)))
                continue
            steps = self.subst(v, scope)
            if isinstance(steps, YSeq):
                items = self.resolve_steps(steps.items, defn.ns, ())
                steps = YSeq((*pre, *items, *post), steps.span)
            pairs.append((k, steps))
        if "steps" not in body and (pre or post):
            pairs.append((_key("steps", body.span), YSeq((*pre, *post), body.span)))
        return self.apply_executor(YMap(tuple(pairs), body.span), defn.ns, defn.name)


def _merge_executor(job: YMap, executor: YMap) -> YMap:
    own = set(job.keys())
    provided: list[tuple[YScalar, YNode]] = []
    for k, v in executor.pairs:
        name = k.as_str()
        if name not in EXECUTOR_KEYS:
            continue
        if name == "environment" and isinstance(v, YMap):
            mine = job.get("environment")
            if isinstance(mine, YMap):
                keys = set(mine.keys())
                merged = tuple(p for p in v.pairs if p[0].as_str() not in keys) + mine.pairs
                provided.append((k, YMap(merged, mine.span)))
                continue
        if name not in own:
            provided.append((k, v))
    out: list[tuple[YScalar, YNode]] = []
    for k, v in job.pairs:
        if k.as_str() == "executor":
            out.extend(provided)
        elif not (k.as_str() == "environment" and any(p[0].as_str() == "environment"
                                                      for p in provided)):
            out.append((k, v))
    return YMap(tuple(out), job.span)


def _matrix_name(job: str, combo: Mapping[str, YNode]) -> str:
    """Default instance name: the job, then each value ordered by parameter name (§6.6)."""
    values = [_render_scalar(v) if isinstance(v, YScalar) else str(_plain(v))
              for _, v in sorted(combo.items())]
    return "-".join([job, *values])


class _WorkflowExpander(_Expander):
    """Workflows: conditions, entries (matrices, arguments) → concrete jobs."""

    def __init__(self, diags: Diagnostics) -> None:
        super().__init__(diags)
        self.pipeline_scope = Scope(owner="workflows")
        self.groups: dict[str, YSeq] = {}  # `job-groups`: name → its `jobs` list
        self.in_group: str | None = None  # the job group whose members are being expanded

    # ---- matrices ----------------------------------------------------------------------

    def matrix(self, node: YNode, job: str) -> tuple[list[dict[str, YNode]], str] | None:
        """The combinations of a `matrix:` (minus `exclude`) and its alias."""
        node = self.subst(node, self.pipeline_scope)
        params = node.get("parameters") if isinstance(node, YMap) else None
        if not isinstance(node, YMap) or not isinstance(params, YMap) or not params.pairs:
            self.diags.error("invalid-matrix", "`matrix` needs `parameters`: a mapping of"
                             " parameter → list of values", node.span)
            return None
        axes: list[tuple[str, tuple[YNode, ...]]] = []
        for k, v in params.pairs:
            if not isinstance(v, YSeq) or not v.items:
                self.diags.error("invalid-matrix", f"matrix parameter {k.as_str()!r} needs a"
                                 " non-empty list of values", v.span)
                return None
            axes.append((k.as_str(), v.items))
        combos = [dict(zip([a for a, _ in axes], values, strict=True))
                  for values in itertools.product(*(vs for _, vs in axes))]
        self.spend(len(combos), node.span)
        combos = self.exclude(combos, node.get("exclude"), {a for a, _ in axes})
        alias = node.get("alias")
        return combos, alias.as_str() if isinstance(alias, YScalar) else job

    def exclude(self, combos: list[dict[str, YNode]], node: YNode | None, axes: set[str]
                ) -> list[dict[str, YNode]]:
        if node is None:
            return combos
        if not isinstance(node, YSeq):
            self.diags.error("invalid-matrix", "`exclude` must be a list of combinations",
                             node.span)
            return combos
        for entry in node.items:
            if not isinstance(entry, YMap) or set(entry.keys()) != axes:
                self.diags.error("invalid-matrix", "each `exclude` entry must give a value for"
                                 f" every matrix parameter ({', '.join(sorted(axes))})",
                                 entry.span)
                continue
            drop = {k.as_str(): _matrix_value(v) for k, v in entry.pairs}
            combos = [c for c in combos
                      if {k: _matrix_value(v) for k, v in c.items()} != drop]
        return combos

    # ---- workflow entries --------------------------------------------------------------

    def entry(self, entry: YNode, plan: _WorkflowPlan) -> None:
        if isinstance(entry, YScalar):
            job, body, span = entry.as_str(), None, entry.span
        elif isinstance(entry, YMap) and len(entry.pairs) == 1:
            key, value = entry.pairs[0]
            job, span = key.as_str(), key.span
            body = value if isinstance(value, YMap) else None
            if body is None and not (isinstance(value, YScalar) and value.value is None):
                plan.entries.append(entry)  # the reader reports the wrong type
                return
        else:
            plan.entries.append(entry)
            return
        if job in self.groups:
            self.group_entry(job, body, span, plan)
            return
        matrix = body.get("matrix") if body is not None else None
        if matrix is None:
            inv = self.instance(job, body, span, None)
            if inv is not None:
                plan.entries.append(inv)
            return
        found = self.matrix(matrix, job)
        if found is None:
            return
        combos, alias = found
        instances = plan.aliases.setdefault(alias, [])
        for combo in combos:
            inv = self.instance(job, body, span, combo)
            if inv is not None:
                plan.entries.append(inv)
                instances.append(inv.name)

    # ---- job groups --------------------------------------------------------------------

    def job_groups(self, node: YNode | None) -> None:
        """`job-groups:` (semantics §1): named lists of job invocations."""
        if node is None:
            return
        if not isinstance(node, YMap):
            self.diags.error("invalid-job-group", "`job-groups` must be a mapping of group"
                             " name → `{jobs: [...]}`", node.span)
            return
        for k, v in node.pairs:
            jobs = v.get("jobs") if isinstance(v, YMap) else None
            extra = [key for key in v.keys() if key != "jobs"] if isinstance(v, YMap) else []
            if not isinstance(jobs, YSeq) or not jobs.items or extra:
                self.diags.error("invalid-job-group", f"job group {k.as_str()!r} must be a"
                                 " mapping with one key, `jobs`: a non-empty list of job"
                                 " invocations", v.span)
                continue
            self.groups[k.as_str()] = jobs

    def group_entry(self, group: str, body: YMap | None, span: Span,
                    plan: _WorkflowPlan) -> None:
        """A job group used like a job: its members join the workflow, named
        `<name>-<member>` when the invocation has a `name`. The group's `requires` go to the
        members that require no other member; `requires` naming the group means every
        member; its `filters` and `serial-group` apply to every member."""
        if self.in_group is not None:
            self.diags.error("invalid-job-group", f"job group {self.in_group!r} uses job group"
                             f" {group!r}: job groups do not nest", span)
            return
        scope = Scope(pipeline=self.root.pipeline, owner=f"the workflow entry for {group!r}")
        sub = self.subst(body, scope) if body is not None else None
        assert sub is None or isinstance(sub, YMap)
        given = {k.as_str(): (k, v) for k, v in sub.pairs} if sub is not None else {}
        for key, (k, _) in given.items():
            if key not in ("requires", "name", "filters", "serial-group"):
                self.diags.error("invalid-job-group", f"an invocation of job group {group!r}"
                                 " takes only `requires`, `name`, `filters` and"
                                 f" `serial-group`, not `{key}`", k.span)
        name_node = given.get("name", (None, None))[1]
        explicit = name_node.as_str() if isinstance(name_node, YScalar) else ""
        name = explicit or group
        if name in plan.aliases:
            self.diags.error("invalid-job-group", f"job group {group!r} is used more than once"
                             f" as {name!r} in this workflow: give each use its own `name`",
                             span)
            return
        inner = _WorkflowPlan(plan.name_key, plan.node, [], {})
        self.in_group = group
        try:
            for e in self.groups[group].items:
                self.entry(e, inner)
        finally:
            self.in_group = None
        prefix = f"{name}-" if explicit else ""
        members = [e for e in inner.entries if isinstance(e, _Invocation)]
        rename = {inv.name: prefix + inv.name for inv in members}
        rename.update((a, prefix + a) for a in inner.aliases)
        for inv in members:
            self.join_group(inv, group, given, rename)
            inv.name = rename[inv.name]
        if "serial-group" in given and len(members) > 1:
            self.diags.warning("approximated-serial-group", f"`serial-group` on job group"
                               f" {group!r} makes CircleCI hold the group as one unit until"
                               " all its jobs finish; the targets serialise each of its jobs"
                               " on its own, so another run's jobs of the same serial group"
                               " can run between them", given["serial-group"][0].span)
        plan.entries.extend(inner.entries)
        for alias, names in inner.aliases.items():
            plan.aliases[rename[alias]] = [rename[n] for n in names]
        plan.aliases[name] = [inv.name for inv in members]
        plan.members.update((inv.name, group) for inv in members)

    def member_requires(self, plan: _WorkflowPlan) -> None:
        """A workflow job requires a job group, not one of its jobs (as CircleCI checks)."""
        for inv in plan.entries:
            if not isinstance(inv, _Invocation) or inv.name in plan.members:
                continue
            requires = next((v for k, v in inv.kept if k.as_str() == "requires"), None)
            for name, where in _required_names(requires):
                if name in plan.members and name not in plan.aliases:
                    self.diags.error("invalid-job-group", f"{inv.name!r} requires {name!r},"
                                     f" a job of job group {plan.members[name]!r}: require the"
                                     " group instead", where)

    def join_group(self, inv: _Invocation, group: str,
                   given: Mapping[str, tuple[YScalar, YNode]], rename: Mapping[str, str]
                   ) -> None:
        kept = {k.as_str(): (k, v) for k, v in inv.kept}
        for name, where in _required_names(kept["requires"][1] if "requires" in kept else None):
            if name not in rename:
                self.diags.error("invalid-job-group", f"{inv.name!r} in job group {group!r}"
                                 f" requires {name!r}, which is not a job of the group", where)
        if "serial-group" in kept:
            self.diags.error("invalid-job-group", f"{inv.name!r} in job group {group!r} has its"
                             " own `serial-group`; set it on the job group instead",
                             kept["serial-group"][0].span)
        if "requires" in kept:
            k, v = kept["requires"]
            kept["requires"] = (k, _renamed(v, rename))
        elif "requires" in given:
            kept["requires"] = given["requires"]
        if "filters" in given:
            if "filters" in kept:
                self.diags.warning("job-group-filters", f"{inv.name!r} has filters of its own"
                                   f" inside job group {group!r}, which has filters too: its"
                                   " own are used", kept["filters"][0].span)
            else:
                kept["filters"] = given["filters"]
        if "serial-group" in given:
            kept["serial-group"] = given["serial-group"]
        inv.kept = list(kept.values())

    def instance(self, job: str, body: YMap | None, span: Span,
                 combo: dict[str, YNode] | None) -> _Invocation | None:
        scope = Scope(matrix=combo, pipeline=self.root.pipeline,
                      owner=f"the workflow entry for {job!r}")
        sub = self.subst(_without(body, ["matrix"]), scope) if body is not None else None
        assert sub is None or isinstance(sub, YMap)
        pairs = list(sub.pairs) if sub is not None else []
        name_node = sub.get("name") if sub is not None else None
        name = (name_node.as_str() if isinstance(name_node, YScalar) and name_node.as_str()
                else _matrix_name(job, combo) if combo else job)
        type_node = sub.get("type") if sub is not None else None
        if isinstance(type_node, YScalar) and type_node.as_str() == "approval":
            kept = [(k, v) for k, v in pairs if k.as_str() not in ("name", "pre-steps",
                                                                    "post-steps")]
            return _Invocation(job=job, name=name, span=span, kept=kept)
        found = self.root.lookup("jobs", job)
        override, decided = self.override(sub, job)
        found = override or found
        # Decided here: the processed config shows the outcome; otherwise it keeps the key.
        kept = [(k, v) for k, v in pairs if k.as_str() in KEPT_ENTRY_KEYS
                and not (decided and k.as_str() == "override-with")]
        inv = _Invocation(job=job, name=name, span=span, kept=kept)
        if not isinstance(found, Definition):
            if found is None:  # unknown job: keep the arguments, the reader reports the job
                inv.kept = [(k, v) for k, v in pairs if k.as_str() != "name"]
            return inv
        args = [(k, v) for k, v in pairs if k.as_str() not in RESERVED_ENTRY_KEYS]
        args += [(_key(k, v.span), v) for k, v in (combo or {}).items()
                 if k not in {a.as_str() for a, _ in args}]
        values = self.bind(found, args, span, f"job {found.name!r}")
        if values is None:
            return None
        inv.defn, inv.values = found, values
        inv.pre = self.entry_steps(sub, "pre-steps")
        inv.post = self.entry_steps(sub, "post-steps")
        inv.key = _job_key(found, values, inv.pre, inv.post)
        return inv

    def override(self, body: YMap | None, job: str) -> tuple[Definition | None, bool]:
        """`override-with: orb/job` (semantics §5.2): the orb's job replaces the invoked one
        when the orb defines it; otherwise the config's own job runs. Also says whether that
        was decided (the orb's source is known)."""
        node = body.get("override-with") if body is not None else None
        if body is None or node is None:
            return None, False
        if not isinstance(node, YScalar) or node.as_str().count("/") != 1:
            self.diags.error("invalid-value", "`override-with` must name an orb job"
                             f" (`orb/job`), not {_describe(node)}", node.span)
            return None, False
        ref = node.as_str()
        orb = self.root.orb(ref.split("/", 1)[0])
        if orb is None:
            self.diags.warning("override-with", f"`override-with: {ref}` names an orb this"
                               f" config does not import; {job!r} runs as defined here",
                               node.span)
        elif isinstance(orb, RegistryOrb):
            self.diags.warning("override-with", f"`override-with: {ref}`: the source of orb"
                               f" {orb.ref!r} is not available, so whether it defines the job"
                               f" is unknown; {job!r} runs as defined here: {PROVIDE_HINT}",
                               node.span)
        else:
            found = self.root.lookup("jobs", ref)
            return (found if isinstance(found, Definition) else None), True
        return None, False

    def entry_steps(self, body: YMap | None, key: str) -> list[YNode]:
        node = body.get(key) if body is not None else None
        if node is None or (isinstance(node, YScalar) and node.value is None):
            return []
        if not isinstance(node, YSeq):
            self.diags.error("invalid-type", f"`{key}` must be a list of steps", node.span)
            return []
        return self.resolve_steps(node.items, self.root, ())

    # ---- workflows ---------------------------------------------------------------------

    def workflow_selected(self, name: str, m: YMap
                          ) -> tuple[bool, list[tuple[YScalar, YNode]]]:
        """Decide workflow `when`/`unless` (§5.1) when pipeline parameters settle it; a
        condition on run-time values is returned to be kept (the reader lowers it)."""
        if "when" in m and "unless" in m:
            k = m.key("unless")
            assert k is not None
            self.diags.error("invalid-condition", f"workflow {name!r} has both `when` and"
                             " `unless`", k.span)
        kept: list[tuple[YScalar, YNode]] = []
        for kind in ("when", "unless"):
            node, key = m.get(kind), m.key(kind)
            if node is None or key is None:
                continue
            if is_expression(node):
                assert isinstance(node, YScalar)
                value, rest = self.expression(node, f"workflow {name!r}: `{kind}`")
                if value is None:
                    kept.append((key, _string(rest, node.span)))
                    continue
            else:
                node = self.subst(node, self.pipeline_scope)
                value = self.logic(node)
            if value is None:
                kept.append((key, _Finalizer(self.diags).node(node, "label")))
            elif value != (kind == "when"):
                self.diags.note("workflow-skipped", f"workflow {name!r} is left out: its `{kind}`"
                                " condition is "
                                f"{'true' if value else 'false'} for these pipeline parameters",
                                key.span)
                return False, []
        return True, kept

    def expression(self, node: YScalar, what: str) -> tuple[bool | None, str]:
        """An expression condition (§5.5) with pipeline parameters substituted: its truth when
        that settles it, else None and the expression left for run time."""
        try:
            expr = substitute(parse(node.as_str()),
                              lambda n: self.scope_value(n, self.pipeline_scope, node.span))
        except ExpressionError as exc:
            self.diags.error("invalid-condition", f"{what} is not a valid expression: {exc}",
                             node.span)
            return False, ""
        try:
            known, value = known_value(expr)
        except Unsupported as exc:
            self.diags.error("invalid-condition", f"{what}: {exc.args[0]}", node.span)
            return False, ""
        return (truthy(value), "") if known else (None, to_text(simplify(expr)))

    def plan(self, wf_map: YMap) -> list[_WorkflowPlan | tuple[YScalar, YNode]]:
        plans: list[_WorkflowPlan | tuple[YScalar, YNode]] = []
        for k, v in wf_map.pairs:
            jobs = v.get("jobs") if isinstance(v, YMap) else None
            if k.as_str() == "version" or not isinstance(v, YMap) or not isinstance(jobs, YSeq):
                plans.append((k, v))  # kept as written; the reader checks it
                continue
            selected, condition = self.workflow_selected(k.as_str(), v)
            if not selected:
                continue
            body = _without(v, ["when", "unless"])
            body = YMap((*condition, *body.pairs), body.span) if condition else body
            plan = _WorkflowPlan(k, body, [], {})
            for entry in jobs.items:
                self.entry(entry, plan)
            self.member_requires(plan)
            plans.append(plan)
        return plans

    # ---- concrete jobs -----------------------------------------------------------------

    def concrete_jobs(self, invocations: list[_Invocation], root_jobs: list[Definition],
                      implicit_build: bool) -> list[tuple[YScalar, YNode]]:
        """Name and expand one job per distinct (definition, arguments, pre/post-steps)."""
        variants = self.unused_variants(invocations, root_jobs, implicit_build)
        seen = {v.key for v in variants}
        for inv in invocations:
            if inv.defn is not None and inv.values is not None and inv.key not in seen:
                seen.add(inv.key)
                variants.append(_Variant(inv.key, inv.defn, inv.values, inv.pre, inv.post))
        plain = {v.defn.name: v.key for v in variants if v.key == self.plain_key(v.defn)}
        names = self.assign_names(invocations, plain, {d.name for d in root_jobs})
        # Output order: the order of `jobs:` (then orb jobs); for each, the job used without
        # arguments first, then the other variants in order of first use.
        rank = {d.name: i for i, d in enumerate(root_jobs)}
        variants.sort(key=lambda v: (rank.get(v.defn.name, len(rank)),
                                     plain.get(v.defn.name) != v.key))
        out: list[tuple[YScalar, YNode]] = []
        for v in variants:
            job = (self.expand_unused(v.defn, v.values) if v.unused
                   else self.expand_job(v.defn, v.values, v.pre, v.post))
            if job is not None:
                out.append((_key(names[v.key], v.defn.span), job))
        return out

    def unused_variants(self, invocations: list[_Invocation], root_jobs: list[Definition],
                        implicit_build: bool) -> list[_Variant]:
        """Jobs no workflow invokes, kept when they need no arguments (a save_cache in them
        still tells targets what a restore_cache restores)."""
        used = {inv.defn.name for inv in invocations if inv.defn is not None}
        out = []
        for d in root_jobs:
            if d.name in used:
                continue
            runs_alone = implicit_build and d.name == "build"  # no workflows: it runs (§0)
            values = self.defaults(d)
            if values is None and runs_alone:
                self.bind(d, [], d.span, "job 'build'")  # reports the missing parameters
            if values is not None:
                out.append(_Variant(_job_key(d, values, [], []), d, values, unused=not runs_alone))
        return out

    def plain_key(self, defn: Definition) -> Hashable:
        values = self.defaults(defn)
        return None if values is None else _job_key(defn, values, [], [])

    def assign_names(self, invocations: list[_Invocation], plain: dict[str, Hashable],
                     def_names: set[str]) -> dict[Hashable, str]:
        """A job used without arguments keeps its name; each other variant takes its
        invocation's name, unless another job has it (then `-2`, `-3`, ...)."""
        names: dict[Hashable, str] = {key: name for name, key in plain.items()}
        used = set(names.values())
        for inv in invocations:
            if inv.defn is None or inv.key in names:
                continue
            own = inv.defn.name

            def free(n: str, own: str = own) -> bool:
                return n not in used and (n == own or n not in def_names)

            candidate, i = inv.name, 1
            while not free(candidate):
                i += 1
                candidate = f"{inv.name}-{i}"
            names[inv.key] = candidate
            used.add(candidate)
        for inv in invocations:
            if inv.defn is not None:
                inv.concrete = names[inv.key]
        return names

    def expand_unused(self, defn: Definition, values: Mapping[str, YNode]) -> YNode | None:
        """A job no workflow uses never runs: if it does not expand, leave it out (warning)."""
        main, self.diags = self.diags, Diagnostics()
        job: YNode | None = None
        try:
            job = self.expand_job(defn, values, [], [])
        except ConfigError:
            pass  # the expansion limit: recorded in `local` like any other error
        finally:
            local, self.diags = self.diags, main
        errors = [d for d in local.sorted() if d.severity == "error"]
        if not errors:
            self.diags.items.extend(local.items)
            return job
        first = errors[0]
        where = f"{first.span}: " if first.span else ""
        self.diags.warning("unused-job", f"job {defn.name!r} is used by no workflow and does not"
                           f" expand ({where}{first.message} [{first.code}]); it is left out",
                           defn.span)
        return None

    # ---- output ------------------------------------------------------------------------

    def entry_node(self, inv: _Invocation, aliases: Mapping[str, list[str]]) -> YNode:
        target = inv.concrete or inv.job
        pairs: list[tuple[YScalar, YNode]] = []
        if inv.name != target:
            pairs.append((_key("name", inv.span), _string(inv.name, inv.span)))
        for k, v in inv.kept:
            if k.as_str() == "filters" and is_expression(v):
                assert isinstance(v, YScalar)
                v = self.filter_expression(v)
            if k.as_str() == "serial-group":
                # A group per branch and the like: targets read these `${CIRCLE_…}` at run time.
                v = _Finalizer(self.diags).node(v, "serial")
            pairs.append((k, _requires(v, aliases, inv.name) if k.as_str() == "requires" else v))
        key = _key(target, inv.span)
        if not pairs:
            return key
        return YMap(((key, YMap(tuple(pairs), inv.span)),), inv.span)

    def filter_expression(self, node: YScalar) -> YScalar:
        """An expression filter with pipeline parameters substituted (the reader lowers the
        run-time rest); a known result becomes `true`/`false`."""
        try:
            expr = substitute(parse(node.as_str()),
                              lambda n: self.scope_value(n, self.pipeline_scope, node.span))
            return _string(to_text(simplify(expr)), node.span)
        except (ExpressionError, Unsupported):
            return node  # the reader reports it

    def workflows_node(self, plans: list[_WorkflowPlan | tuple[YScalar, YNode]], span: Span
                       ) -> YMap:
        pairs: list[tuple[YScalar, YNode]] = []
        for plan in plans:
            if isinstance(plan, tuple):
                pairs.append(plan)
                continue
            jobs_key = plan.node.key("jobs")
            jobs_node = plan.node.get("jobs")
            assert jobs_key is not None and jobs_node is not None
            entries = tuple(e if not isinstance(e, _Invocation) else
                            self.entry_node(e, plan.aliases) for e in plan.entries)
            body = tuple((k, YSeq(entries, jobs_node.span) if k is jobs_key else v)
                         for k, v in plan.node.pairs)
            pairs.append((plan.name_key, YMap(body, plan.node.span)))
        return YMap(tuple(pairs), span)


def _defaults_scope(defn: Definition) -> Scope:
    return Scope(pipeline=defn.ns.pipeline, owner=f"the parameter defaults of {defn.name!r}")


def _matrix_value(node: YNode) -> Hashable:
    return _render_scalar(node) if isinstance(node, YScalar) else _plain(node)


def _job_key(defn: Definition, values: Mapping[str, YNode], pre: list[YNode],
             post: list[YNode]) -> Hashable:
    return (defn.name, tuple(sorted((k, _plain(v)) for k, v in values.items())),
            tuple(_plain(s) for s in pre), tuple(_plain(s) for s in post))


def _required_names(node: YNode | None) -> list[tuple[str, Span]]:
    """The names a `requires` value lists (`- a`, `- a: failed`), with their positions."""
    if node is None:
        return []
    items = node.items if isinstance(node, YSeq) else (node,)
    out: list[tuple[str, Span]] = []
    for item in items:
        if isinstance(item, YScalar):
            out.append((item.as_str(), item.span))
        elif isinstance(item, YMap):
            out.extend((k.as_str(), k.span) for k, _ in item.pairs)
    return out


def _renamed(node: YNode, rename: Mapping[str, str]) -> YNode:
    """A `requires` value with the names in `rename` replaced (a job group's members)."""
    if isinstance(node, YScalar):
        text = node.as_str()
        return _string(rename[text], node.span) if text in rename else node
    if isinstance(node, YSeq):
        return YSeq(tuple(_renamed(i, rename) for i in node.items), node.span)
    return YMap(tuple((_key(rename.get(k.as_str(), k.as_str()), k.span), v)
                      for k, v in node.pairs), node.span)


def _requires(node: YNode, aliases: Mapping[str, list[str]], own: str) -> YNode:
    """`requires` naming a matrix alias means every instance of that matrix (§6.6)."""
    items = node.items if isinstance(node, YSeq) else (node,)
    out: list[YNode] = []
    for item in items:
        if isinstance(item, YScalar) and item.as_str() in aliases:
            out.extend(_string(n, item.span) for n in aliases[item.as_str()] if n != own)
        elif isinstance(item, YMap) and len(item.pairs) == 1 and (
            item.pairs[0][0].as_str() in aliases
        ):
            k, v = item.pairs[0]
            out.extend(YMap(((_key(n, k.span), v),), item.span)
                       for n in aliases[k.as_str()] if n != own)
        else:
            out.append(item)
    if isinstance(node, YScalar) and len(out) == 1:
        return out[0]
    return YSeq(tuple(out), node.span)


# ---- the last pass: pipeline values known only at run time -------------------------------


class _Finalizer:
    """Turn run-time pipeline-value markers into `${VAR}` in `run` commands and `serial-group`
    names, cache-key templates in cache keys, and back into literal text (with a warning)
    anywhere else."""

    def __init__(self, diags: Diagnostics) -> None:
        self.diags = diags

    def node(self, node: YNode, mode: str) -> YNode:
        # A new node only where a marker was replaced: most of a config has none.
        if isinstance(node, YScalar):
            return self.scalar(node, mode) if _MARK_OPEN in node.text else node
        if isinstance(node, YSeq):
            items = [self.node(i, mode) for i in node.items]
            if all(map(operator.is_, items, node.items)):
                return node
            return YSeq(tuple(items), node.span)
        pairs = [(self.key(k), self.node(v, mode)) for k, v in node.pairs]
        if all(a[0] is b[0] and a[1] is b[1] for a, b in zip(pairs, node.pairs, strict=True)):
            return node
        return YMap(tuple(pairs), node.span)

    def key(self, key: YScalar) -> YScalar:
        if _MARK_OPEN not in key.text:
            return key
        out = self.scalar(key, "other")
        return _key(out.text, key.span) if isinstance(out, YScalar) else key

    def scalar(self, node: YScalar, mode: str) -> YScalar:
        literal: list[str] = []

        def replace(m: re.Match[str]) -> str:
            name = m.group(1)
            if mode in ("run", "serial") and name in RUNTIME_ENV:
                return "${" + RUNTIME_ENV[name] + "}"
            if mode == "cache" and name in CACHE_TEMPLATE:
                return CACHE_TEMPLATE[name]
            if mode == "cache" and name in RUNTIME_ENV:
                return "{{ .Environment." + RUNTIME_ENV[name] + " }}"
            literal.append(name)
            return f"<< pipeline.{name} >>"

        text = _MARKER.sub(replace, node.text)
        if literal and mode != "label":
            names = ", ".join(f"`<< pipeline.{n} >>`" for n in dict.fromkeys(literal))
            where = ("has no run-time equivalent on the targets"
                     if mode in ("run", "serial") else
                     "is only known when the pipeline runs, and only `run` commands and cache"
                     " keys can read it then")
            self.diags.warning("runtime-pipeline-value", f"{names} {where}; it is kept as literal"
                               " text here", node.span)
        return _string(text, node.span)

    def step(self, step: YNode) -> YNode:
        parts = _step_parts(step)
        if parts is None or not isinstance(step, YMap):
            return self.node(step, "other")
        name, body, _ = parts
        key = step.pairs[0][0]
        if name in ("run", "deploy") and isinstance(body, YScalar):
            command = self.node(body, "run")
            return step if command is body else YMap(((key, command),), step.span)
        modes = {"run": {"command": "run", "name": "label"}, "deploy": {"command": "run"},
                 "save_cache": {"key": "cache"}, "restore_cache": {"key": "cache",
                                                                    "keys": "cache"}}.get(name)
        if modes is None or not isinstance(body, YMap):
            return self.node(step, "other")
        pairs = tuple((k, self.node(v, modes.get(k.as_str(), "other"))) for k, v in body.pairs)
        if all(a[1] is b[1] for a, b in zip(pairs, body.pairs, strict=True)):
            return step  # nothing replaced: the step as it was
        return YMap(((key, YMap(pairs, body.span)),), step.span)

    def job(self, job: YNode) -> YNode:
        if not isinstance(job, YMap):
            return self.node(job, "other")
        pairs: list[tuple[YScalar, YNode]] = []
        for k, v in job.pairs:
            if k.as_str() == "steps" and isinstance(v, YSeq):
                steps = tuple(self.step(s) for s in v.items)
                same = all(map(operator.is_, steps, v.items))
                pairs.append((k, v if same else YSeq(steps, v.span)))
            else:
                pairs.append((k, self.node(v, "other")))
        if all(a[1] is b[1] for a, b in zip(pairs, job.pairs, strict=True)):
            return job
        return YMap(tuple(pairs), job.span)


# ---- entry points ----------------------------------------------------------------------


def _unchanged(node: YNode, mode: str) -> YNode:
    return node


def expand_config(root: YMap, diags: Diagnostics, *,
                  pipeline_params: Mapping[str, str] | None = None,
                  orb_dir: Path | None = None, source: str | None = None) -> YMap:
    """Expand a 2.1 config tree into a 2.0-style tree. Raises ConfigError after errors.

    Registry orbs found under `orb_dir` (layout: `orbsource.py`) are expanded like inline
    ones; the others stay imported, and their elements become placeholders later. `source`:
    the config's text, when known (it lets the finaliser be skipped, see below)."""
    before = sum(1 for d in diags.items if d.severity == "error")
    x = _WorkflowExpander(diags)
    if orb_dir is not None:
        x.orb_sources = OrbSources(orb_dir, diags)
    pipeline = x.pipeline_values(root.get("parameters"), pipeline_params or {})
    x.root = x.namespace(root, "", pipeline, None)
    x.pipeline_scope = Scope(pipeline=pipeline, owner="workflows")
    x.job_groups(root.get("job-groups"))
    wf_node = root.get("workflows")
    plans = x.plan(wf_node) if isinstance(wf_node, YMap) else []
    invocations = [e for p in plans if isinstance(p, _WorkflowPlan) for e in p.entries
                   if isinstance(e, _Invocation)]
    root_jobs = list(x.root.jobs.values())
    jobs = x.concrete_jobs(invocations, root_jobs, implicit_build="workflows" not in root)
    # Markers exist only where `lookup` made one, or as the same private-use characters in
    # the source text or an orb file. Without any, the finaliser would walk every node of
    # every job and workflow to return each unchanged (3% of a compile).
    final: Callable[[YNode, str], YNode] = _unchanged
    if x.marked or orb_dir is not None or source is None or _MARK_OPEN in source:
        fin = _Finalizer(diags)
        jobs = [(k, fin.job(v)) for k, v in jobs]
        final = fin.node
    out: list[tuple[YScalar, YNode]] = []
    for k, v in root.pairs:
        name = k.as_str()
        if name in ("commands", "executors", "parameters", "job-groups"):
            continue
        if name == "jobs" and isinstance(v, YMap):
            v = YMap(tuple(jobs), v.span)
        elif name == "workflows" and isinstance(v, YMap):
            v = final(x.workflows_node(plans, v.span), "other")
        elif name == "orbs" and isinstance(v, YMap):
            registry = tuple(orb.entry for orb in x.root.registry_orbs())
            if not registry:
                continue
            v = final(YMap(registry, v.span), "other")
        elif name == "setup":
            v = final(x.subst(v, x.pipeline_scope), "other")
        out.append((k, v))
    if "jobs" not in root and isinstance(wf_node, YMap):  # workflows of orb jobs only
        out.append((_key("jobs", root.span), YMap(tuple(jobs), root.span)))
    _release(x.root, set())
    if sum(1 for d in diags.items if d.severity == "error") > before:
        raise ConfigError
    return YMap(tuple(out), root.span)


def _release(ns: Namespace, seen: set[int]) -> None:
    """Empty the tables of `ns` and of its inline orbs. Each Definition points back at its
    namespace: left as is, that cycle hands every expanded config's tree to the cyclic garbage
    collector (a tenth of the compile time of a batch, docs/performance.md)."""
    seen.add(id(ns))
    for orb in ns.orbs.values():
        if isinstance(orb, Namespace) and id(orb) not in seen:
            _release(orb, seen)
    ns.commands.clear()
    ns.executors.clear()
    ns.jobs.clear()
    ns.orbs.clear()


def reject_pipeline_params(pipeline_params: Mapping[str, str] | None, diags: Diagnostics,
                           span: Span) -> None:
    """A 2.0 config has no pipeline parameters: any given one is an error."""
    for name in pipeline_params or {}:
        diags.error("unknown-parameter", f"pipeline parameter {name!r} is given, but only"
                    " version 2.1 configs declare pipeline parameters", span)
