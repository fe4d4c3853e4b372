"""Boolean conditions over the pipeline's ref (branch or tag): the language of filters.

A CircleCI pipeline is either a *branch* pipeline (tag empty) or a *tag* pipeline (branch
empty). Every filter and every "does this job exist" rule (semantics §5.3–5.4) is a formula
over these atoms:

- ``IsKind(kind)``: the pipeline is a branch (or tag) pipeline;
- ``Match(kind, pattern)``: it is one, and its name matches ``pattern`` (exact string or a
  Java regex that must match the whole name);
- ``Trigger(source)``: what started the pipeline (``pipeline.trigger_source``: a push
  ``webhook``, an ``api`` call or a ``scheduled_pipeline``); exactly one source holds. Only
  workflow ``when``/``unless`` conditions (and expression filters) produce it.

Targets render formulas into GitLab ``rules:if``, bash tests (make, shell, GitHub gate job).
Formulas are kept in negation normal form (``Not`` only around atoms) because GitLab's rule
language has no unary negation.
"""

from __future__ import annotations

import enum
import re

from cicompile.records import dataclass


class RefKind(enum.StrEnum):
    BRANCH = "branch"
    TAG = "tag"


@dataclass(frozen=True, slots=True)
class Pattern:
    """A filter specifier: ``text`` literally, or a full-match regex when ``regex`` is set."""

    text: str
    regex: bool = False

    def matches(self, name: str) -> bool:
        if self.regex:
            return re.fullmatch(self.text, name) is not None
        return self.text == name

    def __str__(self) -> str:
        return f"/{self.text}/" if self.regex else self.text


@dataclass(frozen=True, slots=True)
class Const:
    value: bool


@dataclass(frozen=True, slots=True)
class IsKind:
    kind: RefKind


@dataclass(frozen=True, slots=True)
class Match:
    kind: RefKind
    pattern: Pattern


# The values of `pipeline.trigger_source` every target can tell apart at run time.
TRIGGER_SOURCES = ("webhook", "api", "scheduled_pipeline")


@dataclass(frozen=True, slots=True)
class Trigger:
    source: str  # one of TRIGGER_SOURCES


@dataclass(frozen=True, slots=True)
class Not:
    atom: IsKind | Match | Trigger


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Cond, ...]


Cond = Const | IsKind | Match | Trigger | Not | And | Or

TRUE = Const(True)
FALSE = Const(False)


def _is_const(c: Cond, value: bool) -> bool:
    """`c == Const(value)`. Only a Const equals a Const (records compare the class first), so
    a class test and the value decide it; `c == TRUE` costs two `__eq__` calls (Python tries
    the reflected one) for every other node, and the algebra asks it for every operand."""
    return c.__class__ is Const and c.value == value  # type: ignore[union-attr]


def negate(c: Cond) -> Cond:
    match c:
        case Const(value):
            return Const(not value)
        case IsKind() | Match() | Trigger():
            return Not(c)
        case Not(atom):
            return atom
        case And(items):
            return any_of(negate(i) for i in items)
        case Or(items):
            return all_of(negate(i) for i in items)
    raise AssertionError(c)


def all_of(items: object) -> Cond:
    flat: list[Cond] = []
    for c in items:  # type: ignore[attr-defined]
        if c.__class__ is Const:  # `c == TRUE`/`== FALSE` in one test (see _is_const)
            if c.value:
                continue
            return FALSE
        for sub in c.items if isinstance(c, And) else (c,):
            if sub not in flat:
                flat.append(sub)
    flat = _drop_implied_kinds(flat)
    decided = _decide_by_literal(flat)
    if decided is not None:
        return all_of(decided)
    if _contradicts(flat):
        return FALSE
    if not flat:
        return TRUE
    if len(flat) == 1:
        return flat[0]
    return And(tuple(flat))


def any_of(items: object) -> Cond:
    flat: list[Cond] = []
    for c in items:  # type: ignore[attr-defined]
        if c.__class__ is Const:
            if c.value:
                return TRUE
            continue
        for sub in c.items if isinstance(c, Or) else (c,):
            if sub not in flat:
                flat.append(sub)
    # absorption: x | (x & y) == x
    flat = [c for c in flat if not (isinstance(c, And) and any(o in c.items for o in flat))]
    if IsKind(RefKind.BRANCH) in flat and IsKind(RefKind.TAG) in flat:
        return TRUE
    if not flat:
        return FALSE
    if len(flat) == 1:
        return flat[0]
    return Or(tuple(flat))


def _kind_of(c: Cond) -> RefKind | None:
    """The pipeline kind a conjunct forces, if any."""
    if isinstance(c, IsKind | Match):
        return c.kind
    return None


def _drop_implied_kinds(items: list[Cond]) -> list[Cond]:
    # IsKind(k) is implied by any Match(k, _) in the same conjunction.
    kinds_by_match = {c.kind for c in items if isinstance(c, Match)}
    return [c for c in items if not (isinstance(c, IsKind) and c.kind in kinds_by_match)]


def _decide_by_literal(items: list[Cond]) -> list[Cond] | None:
    """With `name == x` in a conjunction, the other atoms on that name are known: fold them."""
    for c in items:
        if isinstance(c, Match) and not c.pattern.regex:
            out: list[Cond] = []
            changed = False
            for o in items:
                atom = o.atom if isinstance(o, Not) else o
                if o is not c and isinstance(atom, Match) and atom.kind == c.kind:
                    value = atom.pattern.matches(c.pattern.text)
                    out.append(Const(value if o is atom else not value))
                    changed = True
                else:
                    out.append(o)
            if changed:
                return out
    return None


def _contradicts(items: list[Cond]) -> bool:
    kinds = {k for k in map(_kind_of, items) if k is not None}
    if len(kinds) > 1 or len({c for c in items if isinstance(c, Trigger)}) > 1:
        return True
    return any(isinstance(c, Not) and c.atom in items for c in items)


def evaluate(c: Cond, kind: RefKind, name: str, source: str = "webhook") -> bool:
    """Reference evaluation, used by tests and by the compile-time decision of constant refs."""
    match c:
        case Const(value):
            return value
        case IsKind(k):
            return k == kind
        case Match(k, pattern):
            return k == kind and pattern.matches(name)
        case Trigger(s):
            return s == source
        case Not(atom):
            return not evaluate(atom, kind, name, source)
        case And(items):
            return all(evaluate(i, kind, name, source) for i in items)
        case Or(items):
            return any(evaluate(i, kind, name, source) for i in items)
    raise AssertionError(c)


def atoms(c: Cond) -> set[IsKind | Match | Trigger]:
    match c:
        case IsKind() | Match() | Trigger():
            return {c}
        case Not(atom):
            return {atom}
        case And(items) | Or(items):
            return {a for i in items for a in atoms(i)}
    return set()


def uses_trigger(c: Cond) -> bool:
    """Whether the condition reads what started the pipeline (not only its ref)."""
    return any(isinstance(a, Trigger) for a in atoms(c))


def restrict(c: Cond, kind: RefKind) -> Cond:
    """The formula as it reads inside pipelines of one kind (the other kind's atoms vanish)."""
    match c:
        case Const():
            return c
        case IsKind(k):
            return Const(k == kind)
        case Match(k, _):
            return c if k == kind else FALSE
        case Trigger():
            return c
        case Not(atom):
            return negate(restrict(atom, kind))
        case And(items):
            return all_of(restrict(i, kind) for i in items)
        case Or(items):
            return any_of(restrict(i, kind) for i in items)
    raise AssertionError(c)


def implies(a: Cond, b: Cond) -> bool:
    """A conservative check that `a` implies `b` (False means "not shown")."""
    if _is_const(b, True) or _is_const(a, False) or a == b:
        return True
    if isinstance(a, Or):
        return all(implies(i, b) for i in a.items)
    if isinstance(b, And):
        return all(implies(a, i) for i in b.items)
    if isinstance(a, And) and any(implies(i, b) for i in a.items):
        return True
    if isinstance(b, Or):
        return any(implies(a, i) for i in b.items)
    if isinstance(b, IsKind) and isinstance(a, Match | IsKind):
        return a.kind == b.kind
    return False


def size(c: Cond) -> int:
    if isinstance(c, And | Or):
        return 1 + sum(size(i) for i in c.items)
    return 1
