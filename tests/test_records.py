"""cicompile.records.dataclass behaves as dataclasses.dataclass (it only builds methods lazily)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar

import pytest
from cicompile import conditions, diagnostics, ir, records
from cicompile.records import dataclass


def _both(**params: Any) -> tuple[type[Any], type[Any]]:
    """The same class body under the standard decorator and under ours."""

    def body() -> type[Any]:
        class Rec:
            name: str
            size: int = 3
            tags: tuple[str, ...] = ()
            index: dict[str, int] = dataclasses.field(default_factory=dict, compare=False,
                                                      repr=False)
            note: str | None = dataclasses.field(default=None, hash=False)
            derived: list[int] = dataclasses.field(default_factory=list, init=False,
                                                   compare=False)

            def __post_init__(self) -> None:
                self.index["post"] = len(self.name)

        return Rec

    return dataclasses.dataclass(**params)(body()), dataclass(**params)(body())


PARAMS = [
    {"frozen": True, "slots": True, "kw_only": True},
    {"frozen": True, "slots": True},
    {"frozen": True},
    {"frozen": True, "slots": True, "order": True},
    {"frozen": True, "slots": True, "eq": False},
    {},
    {"eq": False},
    {"slots": True, "order": True},
]


@pytest.mark.parametrize("init", ["generic", "generated"])
@pytest.mark.parametrize("params", PARAMS, ids=lambda p: ",".join(p) or "default")
def test_same_behaviour_as_the_standard_decorator(params: dict[str, Any], init: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The first instances come from the generic __init__, later ones from the generated one.
    monkeypatch.setattr(records, "GENERIC_INITS", 10**9 if init == "generic" else 0)
    std, ours = _both(**params)
    kw_only = params.get("kw_only", False)

    def make(cls: type[Any], name: str, **kw: Any) -> Any:
        return cls(name=name, **kw) if kw_only else cls(name, **kw)

    a_std, a_ours = make(std, "a", tags=("x",)), make(ours, "a", tags=("x",))
    assert repr(a_std) == repr(a_ours).replace(ours.__qualname__, std.__qualname__)
    attrs = ("name", "type", "default", "default_factory", "init", "repr", "hash", "compare",
             "metadata", "kw_only", "_field_type")
    assert [[getattr(f, a) for a in attrs] for f in dataclasses.fields(std)] == \
        [[getattr(f, a) for a in attrs] for f in dataclasses.fields(ours)]
    if not params.get("slots"):
        for name in ("size", "tags", "note", "index"):
            assert getattr(std, name, None) == getattr(ours, name, None)  # class defaults
    assert dataclasses.asdict(a_std) == dataclasses.asdict(a_ours)
    assert a_ours.index == {"post": 1} and a_ours.derived == []
    assert make(ours, "b").derived is not make(ours, "b").derived  # a new list each time
    for attr in ("__match_args__", "__slots__"):
        assert getattr(std, attr, None) == getattr(ours, attr, None)
    if std.__hash__ is object.__hash__:  # eq=False: identity
        assert ours.__hash__ is object.__hash__
    elif std.__hash__ is None:
        assert ours.__hash__ is None
    else:
        assert hash(a_std) == hash(a_ours)  # the same tuple is hashed
    b_ours = make(ours, "a", tags=("x",), note="differs")
    b_std = make(std, "a", tags=("x",), note="differs")
    assert (a_std == b_std) == (a_ours == b_ours)
    assert (a_ours == make(ours, "a", tags=("x",))) == (a_std == make(std, "a", tags=("x",)))
    assert a_ours != make(ours, "z")
    assert a_ours.__eq__(a_std) is NotImplemented or not params.get("eq", True)
    if params.get("order"):
        assert make(ours, "a") < make(ours, "b") and make(std, "a") < make(std, "b")
        assert make(ours, "b") >= make(ours, "a")
        with pytest.raises(TypeError):
            _ = make(ours, "a") < a_std
    replaced = dataclasses.replace(a_ours, size=7)
    assert replaced.size == 7 and replaced.name == "a" and replaced.index == {"post": 1}
    if params.get("frozen"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            a_ours.size = 4
        with pytest.raises(dataclasses.FrozenInstanceError):
            del a_ours.name
        assert copy.deepcopy(a_ours) == a_ours or not params.get("eq", True)
    else:
        a_ours.size = 4
        assert a_ours.size == 4
    assert ours.__dataclass_params__.frozen == params.get("frozen", False)  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        ours()  # `name` is required
    if kw_only:
        with pytest.raises(TypeError):
            ours("positional")


def test_unusual_classes_go_to_the_standard_decorator() -> None:
    @dataclass(frozen=True)
    class Base:
        x: int

    @dataclass(frozen=True)
    class Derived(Base):
        y: int = 0
        counter: ClassVar[int] = 0

    assert Derived(1, 2) == Derived(1, 2) and Derived(1).y == 0
    with pytest.raises(TypeError, match="non-default argument"):
        @dataclass
        class Bad:
            x: int = 0
            y: str  # type: ignore[misc]


def test_the_compiler_classes_keep_their_semantics() -> None:
    # Frozen, hashable by value (spans excluded), rebuilt with `replace`.
    a = ir.Run(command="make", name="build", span=diagnostics.Span("c.yml", 1, 1))
    b = ir.Run(command="make", name="build", span=diagnostics.Span("c.yml", 9, 9))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert dataclasses.replace(a, name="x").name == "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.command = "x"  # type: ignore[misc]
    assert diagnostics.Span("a", 1, 2) < diagnostics.Span("a", 2, 1)
    assert conditions.Match(conditions.RefKind.BRANCH, conditions.Pattern("main")) == \
        conditions.Match(conditions.RefKind.BRANCH, conditions.Pattern("main"))
    assert hash(conditions.TRUE) == hash((True,))  # what the generated __hash__ returns


def test_the_generated_init_takes_over_after_a_few_instances() -> None:
    @dataclass(frozen=True, slots=True, kw_only=True)
    class Point:
        x: int
        y: int = 0

    points = [Point(x=i) for i in range(records.GENERIC_INITS + 2)]
    assert [p.x for p in points] == list(range(records.GENERIC_INITS + 2))
    assert Point.__init__.__code__.co_filename == "<string>"  # generated, then installed
    assert Point(x=1, y=2) == Point(x=1, y=2)


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: ",".join(p) or "default")
def test_replace_gives_what_dataclasses_replace_gives(params: dict[str, Any]) -> None:
    """records.replace copies slotted records field by field (generated code) and leaves
    other classes to dataclasses.replace: both give equal objects with the same fields."""

    def body() -> type[Any]:
        class Plain:  # no __post_init__, no init=False field: the copying path when slotted
            name: str
            size: int = 3
            tags: tuple[str, ...] = ()
            index: dict[str, int] = dataclasses.field(default_factory=dict, compare=False)

        return Plain

    kw_only = params.get("kw_only", False)
    for cls in (dataclass(**params)(body()), _both(**params)[1]):
        a = cls(name="a", tags=("x",)) if kw_only else cls("a", tags=("x",))
        for changes in ({}, {"size": 7}, {"name": "b", "tags": ()}, {"index": {"k": 1}}):
            ours, std = records.replace(a, **changes), dataclasses.replace(a, **changes)
            assert type(ours) is type(std) is cls and ours is not a
            assert [getattr(ours, f.name) for f in dataclasses.fields(cls)] == \
                [getattr(std, f.name) for f in dataclasses.fields(cls)]
        with pytest.raises(TypeError):
            records.replace(a, nosuch=1)
    node = ir.WorkflowNode(name="a", kind=ir.NodeKind.JOB, job="a", requires=("b",),
                           span=diagnostics.Span("c.yml", 3, 4))
    copy_ = records.replace(node, needs=("b",))
    assert copy_ == dataclasses.replace(node, needs=("b",)) and copy_.span == node.span
    assert records._REPLACERS[ir.WorkflowNode] is not dataclasses.replace  # the copying path
    with pytest.raises(dataclasses.FrozenInstanceError):
        copy_.needs = ()  # type: ignore[misc]
