"""`dataclasses.dataclass` without compiling code for every class at import time.

The standard decorator writes `__init__`, `__repr__`, `__eq__`, `__hash__`, `__setattr__`...
of each class as source text and `exec`s them: about 0.5 ms per class, and the compiler
defines some sixty dataclasses on its start-up path, most of which a run never instantiates
(cold start, docs/performance.md). This decorator lets `dataclasses` process the fields (so
`fields`, `replace`, `asdict` and `is_dataclass` work unchanged) and supplies the methods:

- `__eq__`, ordering, `__hash__`, `__repr__`, the frozen `__setattr__`/`__delattr__`: generic
  functions over an `operator.attrgetter` of the same fields: the same tuples are compared and
  hashed as in the generated code, so results and hash values are identical;
- `__init__`: a generic one binds the arguments of a class's first GENERIC_INITS instances,
  then the one the standard decorator would write is generated and installed (so only the
  classes a run creates many of pay for compiling it).

On Python 3.11 the fields are processed here as well (`_fields_311`), skipping the standard
decorator's per-annotation parsing; classes get the name alone as docstring where the standard
decorator computes a signature.

Classes it does not handle (inheriting from a dataclass, `InitVar`/`ClassVar`/`KW_ONLY`
pseudo-fields, `unsafe_hash`, `weakref_slot`) go to the standard decorator. Type checkers see
a dataclass transform, so they check these classes as they check standard dataclasses.
"""

from __future__ import annotations

import abc
import dataclasses
import operator
import reprlib
import sys
import types
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, overload

_T = TypeVar("_T")
_MISSING: Any = dataclasses.MISSING
_std_dataclass: Any = dataclasses.dataclass  # called with a class and options at once


class _HasDefaultFactory:
    def __repr__(self) -> str:
        return "<factory>"


_HAS_DEFAULT_FACTORY = _HasDefaultFactory()


@overload
def dataclass(cls: type[_T], /) -> type[_T]: ...


@overload
def dataclass(
    *, init: bool = True, repr: bool = True, eq: bool = True, order: bool = False,
    unsafe_hash: bool = False, frozen: bool = False, match_args: bool = True,
    kw_only: bool = False, slots: bool = False, weakref_slot: bool = False,
) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(field_specifiers=(dataclasses.field, dataclasses.Field))
def dataclass(cls: Any = None, /, **params: Any) -> Any:
    """Same parameters and semantics as `dataclasses.dataclass`."""

    def wrap(cls: type[_T]) -> type[_T]:
        processed: type[_T] = _process(cls, **params)
        return processed

    return wrap if cls is None else wrap(cls)


def _process(cls: Any, *, init: bool = True, repr: bool = True, eq: bool = True,  # noqa: A002
             order: bool = False, unsafe_hash: bool = False, frozen: bool = False,
             match_args: bool = True, kw_only: bool = False, slots: bool = False,
             weakref_slot: bool = False) -> Any:
    if unsafe_hash or weakref_slot or _unusual(cls):
        return _std_dataclass(
            cls, init=init, repr=repr, eq=eq, order=order, unsafe_hash=unsafe_hash,
            frozen=frozen, match_args=match_args, kw_only=kw_only, slots=slots,
            weakref_slot=weakref_slot)
    if order and not eq:
        raise ValueError("eq must be true if order is true")
    class_hash = cls.__dict__.get("__hash__", _MISSING)
    explicit_hash = not (class_hash is _MISSING
                         or (class_hash is None and "__eq__" in cls.__dict__))
    doc = cls.__dict__.get("__doc__")
    if not doc:
        # The standard decorator would compute an `inspect.signature` for the docstring.
        cls.__doc__ = cls.__name__
    if _FIELDS_FAST:
        cls = _fields_311(cls, match_args=match_args, kw_only=kw_only, slots=slots)
    else:
        cls = _std_dataclass(cls, init=False, repr=False, eq=False, frozen=False,
                             match_args=match_args, kw_only=kw_only, slots=slots)
    params = cls.__dataclass_params__
    params.init, params.repr, params.eq, params.order, params.frozen = (
        init, repr, eq, order, frozen)
    fields = dataclasses.fields(cls)
    compared = [f.name for f in fields if f.compare]
    if init:
        _check_defaults(cls, fields)
        _set(cls, "__init__", _lazy_init(cls, frozen, slots))
    if repr:
        _set(cls, "__repr__", _repr_fn([f.name for f in fields if f.repr]))
    if eq:
        _set(cls, "__eq__", _eq_fn(_key(compared)))
    if order:
        for name, op in (("__lt__", operator.lt), ("__le__", operator.le),
                         ("__gt__", operator.gt), ("__ge__", operator.ge)):
            if _set(cls, name, _order_fn(name, op, _key(compared))):
                raise TypeError(f"Cannot overwrite attribute {name} in class {cls.__name__}."
                                " Consider using functools.total_ordering")
    if frozen:
        names = frozenset(f.name for f in fields)
        for fn in _frozen_fns(cls, names):
            if _set(cls, fn.__name__, fn):
                raise TypeError(f"Cannot overwrite attribute {fn.__name__} in class"
                                f" {cls.__name__}")
        if slots:
            _set(cls, "__getstate__", _getstate)
            _set(cls, "__setstate__", _setstate)
    if eq and not explicit_hash:
        if frozen:
            hashed = [f.name for f in fields if (f.compare if f.hash is None else f.hash)]
            cls.__hash__ = _hash_fn(_key(hashed))
        else:
            cls.__hash__ = None
    return cls


# On the Python this project runs (3.11), the field processing is done here too: what
# `dataclasses._process_class` does for a class `_unusual` accepts, with its own private
# pieces (`_FIELD`, `_DataclassParams`, `_add_slots`), minus the per-annotation ClassVar and
# InitVar parsing those classes do not need. Other versions take the standard path.
_FIELDS_FAST = sys.version_info[:2] == (3, 11) and all(
    hasattr(dataclasses, name) for name in ("_FIELD", "_DataclassParams", "_add_slots"))


def _fields_311(cls: Any, *, match_args: bool, kw_only: bool, slots: bool) -> Any:
    dc: Any = dataclasses
    annotations = cls.__dict__.get("__annotations__", {})
    fields: dict[str, dataclasses.Field[Any]] = {}
    for name, annotation in annotations.items():
        default = getattr(cls, name, _MISSING)
        if isinstance(default, dataclasses.Field):
            f = default
        else:
            if isinstance(default, types.MemberDescriptorType):
                default = _MISSING
            f = dataclasses.field(default=default)
        f.name = name
        f.type = annotation
        f._field_type = dc._FIELD  # type: ignore[attr-defined]
        if f.kw_only is _MISSING:
            f.kw_only = kw_only
        if f.default.__class__.__hash__ is None:
            raise ValueError(f"mutable default {type(f.default)} for field {name} is not"
                             " allowed: use default_factory")
        fields[name] = f
        if isinstance(getattr(cls, name, None), dataclasses.Field):
            if f.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
    for name, value in cls.__dict__.items():
        if isinstance(value, dataclasses.Field) and name not in annotations:
            raise TypeError(f"{name!r} is a field but has no type annotation")
    cls.__dataclass_params__ = dc._DataclassParams(False, False, False, False, False, False)
    cls.__dataclass_fields__ = fields
    if match_args and "__match_args__" not in cls.__dict__:
        setattr(cls, "__match_args__",  # noqa: B010 (mypy refuses the plain assignment)
                tuple(f.name for f in fields.values() if f.init and not f.kw_only))
    if slots:
        cls = dc._add_slots(cls, False, False)
    abc.update_abstractmethods(cls)
    return cls


def _unusual(cls: Any) -> bool:
    if any(hasattr(base, "__dataclass_fields__") for base in cls.__mro__[1:]):
        return True
    for annotation in cls.__dict__.get("__annotations__", {}).values():
        text = annotation if isinstance(annotation, str) else repr(annotation)
        if "ClassVar" in text or "InitVar" in text or "KW_ONLY" in text:
            return True
    return False


def _set(cls: Any, name: str, fn: Any) -> bool:
    """Add a method unless the class defines it; True when it was already there."""
    if name in cls.__dict__:
        return True
    if callable(fn):
        fn.__qualname__ = f"{cls.__qualname__}.{fn.__name__}"
    setattr(cls, name, fn)
    return False


def _key(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """The tuple of these attributes, as the generated methods build it (`(self.a, self.b,)`)."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        get = operator.attrgetter(names[0])
        return lambda obj: (get(obj),)
    return operator.attrgetter(*names)


def _eq_fn(key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any, Any], Any]:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented

    return __eq__


def _order_fn(name: str, op: Callable[[Any, Any], Any],
              key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any, Any], Any]:
    def compare(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return op(key(self), key(other))
        return NotImplemented

    compare.__name__ = name
    return compare


def _hash_fn(key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(key(self))

    return __hash__


def _repr_fn(names: list[str]) -> Callable[[Any], str]:
    @reprlib.recursive_repr()
    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{self.__class__.__qualname__}({inner})"

    return __repr__


def _frozen_fns(cls: Any, names: frozenset[str]) -> tuple[Callable[..., None], ...]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return __setattr__, __delattr__


# Pickling frozen classes with slots, as the standard decorator provides.
def _getstate(self: Any) -> list[Any]:
    return [getattr(self, f.name) for f in dataclasses.fields(self)]


def _setstate(self: Any, state: list[Any]) -> None:
    for f, value in zip(dataclasses.fields(self), state, strict=True):
        object.__setattr__(self, f.name, value)


def _check_defaults(cls: Any, fields: tuple[dataclasses.Field[Any], ...]) -> None:
    seen_default = False
    for f in fields:
        if not f.init or f.kw_only:
            continue
        if f.default is not _MISSING or f.default_factory is not _MISSING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")


# Instances a class gets from the generic __init__ before its own is generated: a short run
# (the CLI's cold start) creates few of most classes and never pays for their compilation.
GENERIC_INITS = 16


def _lazy_init(cls: Any, frozen: bool, slots: bool) -> Callable[..., None]:
    """A generic `__init__` (binds arguments as the generated one would, a few times slower)
    that installs the generated one after GENERIC_INITS instances."""
    count = 0
    spec: tuple[list[str], frozenset[str], list[tuple[str, bool, Any, Any]]] | None = None
    assign = object.__setattr__ if frozen else setattr
    post_init = hasattr(cls, "__post_init__")
    where = f"{cls.__qualname__}.__init__()"

    def prepare() -> tuple[list[str], frozenset[str], list[tuple[str, bool, Any, Any]]]:
        fields = dataclasses.fields(cls)
        return (
            [f.name for f in fields if f.init and not f.kw_only],
            frozenset(f.name for f in fields if f.init),
            # init=False fields with a plain default are read from the class, as in the
            # standard decorator, unless slots removed the class attribute.
            [(f.name, f.init, f.default, f.default_factory) for f in fields
             if f.init or f.default_factory is not _MISSING
             or (slots and f.default is not _MISSING)],
        )

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal count
        count += 1
        if count > GENERIC_INITS:
            real = _init_fn(cls, frozen, slots)
            cls.__init__ = real
            real(self, *args, **kwargs)
            return
        nonlocal spec
        if spec is None:
            spec = prepare()
        positional, accepted, plan = spec
        if len(args) > len(positional):
            raise TypeError(f"{where} takes {len(positional) + 1} positional arguments but"
                            f" {len(args) + 1} were given")
        values = dict(zip(positional, args, strict=False))
        for name in kwargs:
            if name not in accepted:
                raise TypeError(f"{where} got an unexpected keyword argument {name!r}")
            if name in values:
                raise TypeError(f"{where} got multiple values for argument {name!r}")
        values.update(kwargs)
        for name, init, default, factory in plan:
            if init and name in values:
                value = values[name]
            elif factory is not _MISSING:
                value = factory()
            elif default is not _MISSING:
                value = default
            else:
                raise TypeError(f"{where} missing 1 required argument: {name!r}")
            assign(self, name, value)
        if post_init:
            self.__post_init__()

    return __init__


def replace(obj: _T, /, **changes: Any) -> _T:
    """`dataclasses.replace(obj, **changes)`, a few times faster for slotted records.

    The passes rebuild every workflow node once each (about 2.4 µs a call through
    `dataclasses.replace`, whose per-field checks and `__init__` cost more than the copy):
    for a slotted class whose fields all go through `__init__` and without `__post_init__`,
    `__init__` only stores its arguments, so a generated function copies the fields into a
    new instance and stores the changed ones instead. Other classes go to `dataclasses`.
    """
    cls = obj.__class__
    fn = _REPLACERS.get(cls)
    if fn is None:
        fn = _REPLACERS[cls] = _replace_fn(cls)
    return fn(obj, **changes)  # type: ignore[no-any-return]


_REPLACERS: dict[type, Callable[..., Any]] = {}


def _replace_fn(cls: Any) -> Callable[..., Any]:
    fields = dataclasses.fields(cls)
    slots = [cls.__dict__.get(f.name) for f in fields]
    if (hasattr(cls, "__post_init__") or "__slots__" not in cls.__dict__
            or any(not f.init for f in fields)
            or any(not hasattr(slot, "__set__") for slot in slots)):
        return dataclasses.replace
    ns: dict[str, Any] = {"__dataclass_cls__": cls, "__dataclass_new__": object.__new__,
                          "__dataclass_unset__": _MISSING}
    body = ["__dataclass_copy__ = __dataclass_new__(__dataclass_cls__)"]
    for f, slot in zip(fields, slots, strict=True):
        ns[f"__dataclass_slot_{f.name}__"] = slot.__set__
        body.append(f"__dataclass_slot_{f.name}__(__dataclass_copy__, __dataclass_obj__.{f.name}"
                    f" if {f.name} is __dataclass_unset__ else {f.name})")
    body.append("return __dataclass_copy__")
    params = ", ".join(f"{f.name}=__dataclass_unset__" for f in fields)
    lines = "\n".join(f"    {line}" for line in body)
    exec(f"def replace(__dataclass_obj__, /, *, {params}):\n{lines}\n", ns)  # noqa: S102
    fn: Callable[..., Any] = ns["replace"]
    fn.__qualname__ = f"{cls.__qualname__}.<replace>"
    return fn


def _init_fn(cls: Any, frozen: bool, slots: bool) -> Callable[..., None]:
    """The `__init__` the standard decorator would write (frozen: via object.__setattr__)."""
    fields = dataclasses.fields(cls)
    this = "__dataclass_self__" if any(f.name == "self" for f in fields) else "self"
    ns: dict[str, Any] = {"__dataclass_set__": object.__setattr__,
                          "__dataclass_HAS_FACTORY__": _HAS_DEFAULT_FACTORY}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for f in fields:
        dflt = f"__dataclass_dflt_{f.name}__"
        value: str | None = f.name
        if f.init:
            if f.default_factory is not _MISSING:
                ns[dflt] = f.default_factory
                param = f"{f.name}=__dataclass_HAS_FACTORY__"
                value = f"{dflt}() if {f.name} is __dataclass_HAS_FACTORY__ else {f.name}"
            elif f.default is not _MISSING:
                ns[dflt] = f.default
                param = f"{f.name}={dflt}"
            else:
                param = f.name
            (keyword if f.kw_only else positional).append(param)
        elif f.default_factory is not _MISSING:
            ns[dflt] = f.default_factory
            value = f"{dflt}()"
        elif slots and f.default is not _MISSING:
            ns[dflt] = f.default
            value = dflt
        else:
            value = None  # read from the class attribute, as in the standard decorator
        if value is None:
            continue
        slot = cls.__dict__.get(f.name) if slots else None
        if frozen and slot is not None and hasattr(slot, "__set__"):
            # The slot's own descriptor: a third faster than object.__setattr__, and the
            # front end creates one frozen node per YAML node.
            ns[f"__dataclass_slot_{f.name}__"] = slot.__set__
            body.append(f"__dataclass_slot_{f.name}__({this}, {value})")
        elif frozen:
            body.append(f"__dataclass_set__({this}, {f.name!r}, {value})")
        else:
            body.append(f"{this}.{f.name} = {value}")
    if hasattr(cls, "__post_init__"):
        body.append(f"{this}.__post_init__()")
    params = [this, *positional]
    if keyword:
        params += ["*", *keyword]
    lines = "\n".join(f"    {line}" for line in body or ["pass"])
    exec(f"def __init__({', '.join(params)}):\n{lines}\n", ns)  # noqa: S102
    fn: Callable[..., None] = ns["__init__"]
    fn.__qualname__ = f"{cls.__qualname__}.__init__"
    return fn
