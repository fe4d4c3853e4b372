"""Boolean conditions over the pipeline's ref (branch or tag): the language of filters.

A CircleCI pipeline is either a *branch* pipeline (tag empty) or a *tag* pipeline (branch
empty). Every filter and every "does this job exist" rule (semantics §5.3–5.4) is a formula
over these atoms:

- ``IsKind(kind)``: the pipeline is a branch (or tag) pipeline;
- ``Match(kind, pattern)``: it is one, and its name matches ``pattern`` (exact string or a
  Java regex that must match the whole name);
- ``Trigger(source)``: what started the pipeline (``pipeline.trigger_source``: a push
  ``webhook``, an ``api`` call or a ``scheduled_pipeline``); exactly one source holds. Only
  workflow ``when``/``unless`` conditions (and expression filters) produce it;
- ``ScheduleName(pattern)``: a scheduled pipeline whose schedule's name
  (``pipeline.schedule.name``, empty on every other pipeline) matches ``pattern``.

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
SCHEDULED = "scheduled_pipeline"


@dataclass(frozen=True, slots=True)
class Trigger:
    source: str  # one of TRIGGER_SOURCES


@dataclass(frozen=True, slots=True)
class ScheduleName:
    pattern: Pattern  # matched against the (non-empty) name of the schedule that fired


Atom = IsKind | Match | Trigger | ScheduleName


@dataclass(frozen=True, slots=True)
class Not:
    atom: Atom


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Cond, ...]


Cond = Const | IsKind | Match | Trigger | ScheduleName | Not | And | Or

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
        case IsKind() | Match() | Trigger() | ScheduleName():
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
    # IsKind(k) is implied by any Match(k, _) in the same conjunction, a scheduled pipeline by
    # the name of its schedule.
    kinds_by_match = {c.kind for c in items if isinstance(c, Match)}
    named = any(isinstance(c, ScheduleName) for c in items)
    return [c for c in items if not (isinstance(c, IsKind) and c.kind in kinds_by_match)
            and not (named and c == Trigger(SCHEDULED))]


def _named(c: Cond) -> tuple[object, Pattern] | None:
    """(which name, pattern) of an atom that tests a name: a ref's or the schedule's."""
    if isinstance(c, Match):
        return c.kind, c.pattern
    if isinstance(c, ScheduleName):
        return ScheduleName, c.pattern
    return None


def _decide_by_literal(items: list[Cond]) -> list[Cond] | None:
    """With `name == x` in a conjunction, the other atoms on that name are known: fold them."""
    for c in items:
        this = _named(c)
        if this is not None and not this[1].regex:
            out: list[Cond] = []
            changed = False
            for o in items:
                atom = o.atom if isinstance(o, Not) else o
                other = _named(atom)
                if o is not c and other is not None and other[0] == this[0]:
                    value = other[1].matches(this[1].text)
                    out.append(Const(value if o is atom else not value))
                    changed = True
                else:
                    out.append(o)
            if changed:
                return out
    return None


def _contradicts(items: list[Cond]) -> bool:
    kinds = {k for k in map(_kind_of, items) if k is not None}
    sources = {c.source for c in items if isinstance(c, Trigger)}
    if any(isinstance(c, ScheduleName) for c in items):
        sources.add(SCHEDULED)
    if len(kinds) > 1 or len(sources) > 1:
        return True
    if SCHEDULED in sources and Not(Trigger(SCHEDULED)) in items:
        return True
    return any(isinstance(c, Not) and c.atom in items for c in items)


def evaluate(c: Cond, kind: RefKind, name: str, source: str = "webhook",
             schedule: str = "") -> bool:
    """Reference evaluation, used by tests and by the compile-time decision of constant refs;
    `schedule` is the schedule's name on a scheduled pipeline."""
    match c:
        case Const(value):
            return value
        case IsKind(k):
            return k == kind
        case Match(k, pattern):
            return k == kind and pattern.matches(name)
        case Trigger(s):
            return s == source
        case ScheduleName(pattern):
            return source == SCHEDULED and schedule != "" and pattern.matches(schedule)
        case Not(atom):
            return not evaluate(atom, kind, name, source, schedule)
        case And(items):
            return all(evaluate(i, kind, name, source, schedule) for i in items)
        case Or(items):
            return any(evaluate(i, kind, name, source, schedule) for i in items)
    raise AssertionError(c)


def atoms(c: Cond) -> set[Atom]:
    match c:
        case IsKind() | Match() | Trigger() | ScheduleName():
            return {c}
        case Not(atom):
            return {atom}
        case And(items) | Or(items):
            return {a for i in items for a in atoms(i)}
    return set()


def uses_trigger(c: Cond) -> bool:
    """Whether the condition reads what started the pipeline (not only its ref)."""
    return any(isinstance(a, Trigger | ScheduleName) for a in atoms(c))


def uses_schedule_name(c: Cond) -> bool:
    return any(isinstance(a, ScheduleName) for a in atoms(c))


def restrict(c: Cond, kind: RefKind) -> Cond:
    """The formula as it reads inside pipelines of one kind (the other kind's atoms vanish)."""
    match c:
        case Const():
            return c
        case IsKind(k):
            return Const(k == kind)
        case Match(k, _):
            return c if k == kind else FALSE
        case Trigger() | ScheduleName():
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
    return isinstance(a, ScheduleName) and b == Trigger(SCHEDULED)


def size(c: Cond) -> int:
    if isinstance(c, And | Or):
        return 1 + sum(size(i) for i in c.items)
    return 1
