"""Safe YAML loading into a small positioned tree (YMap / YSeq / YScalar).

Why not ``yaml.safe_load``: we need a ``file:line:col`` for every value, and CircleCI accepts
what PyYAML refuses (an anchor defined again later in the file; later aliases use the newest
definition). Alias expansion is bounded before anything walks the tree, so a "billion laughs"
document is rejected in milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from dataclasses import field
from typing import Any

import yaml
from cicompile.diagnostics import ConfigError, Diagnostics, Span
from cicompile.records import dataclass
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# Expanded node count above which a document is refused (real configs stay far below).
MAX_EXPANDED_NODES = 250_000
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STANDARD_TAGS = {
    f"tag:yaml.org,2002:{t}"
    for t in ("str", "int", "float", "bool", "null", "map", "seq", "merge", "timestamp", "binary")
}


@dataclass(frozen=True, slots=True, eq=False)
class YScalar:
    value: Any  # str | int | float | bool | None, typed by YAML 1.1 rules
    text: str  # the scalar exactly as written (CircleCI keeps `1.0` as a branch name)
    span: Span
    quoted: bool = False

    def as_str(self) -> str:
        if self.value is None and not self.quoted:
            return ""
        return self.text


@dataclass(frozen=True, slots=True, eq=False)
class YSeq:
    items: tuple[YNode, ...]
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class YMap:
    # (key, value) pairs in source order, merge keys already applied, duplicates resolved.
    pairs: tuple[tuple[YScalar, YNode], ...]
    span: Span
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self._index:  # given by the loader, which computed it while resolving duplicates
            return
        for i, (k, _) in enumerate(self.pairs):
            self._index[k.as_str()] = i

    def with_values(self, pairs: list[tuple[YScalar, YNode]]) -> YMap:
        """This map with other values: `pairs` has this map's keys, in the same order (the
        key index, never changed once built, is shared instead of built again)."""
        return YMap(tuple(pairs), self.span, self._index)

    def get(self, key: str) -> YNode | None:
        i = self._index.get(key)
        return None if i is None else self.pairs[i][1]

    def key(self, key: str) -> YScalar | None:
        i = self._index.get(key)
        return None if i is None else self.pairs[i][0]

    def keys(self) -> list[str]:
        return [k.as_str() for k, _ in self.pairs]

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def has_only(self, keys: AbstractSet[str]) -> bool:
        """Whether every key here is one of `keys`."""
        return self._index.keys() <= keys

    def has_any(self, keys: AbstractSet[str]) -> bool:
        """Whether some of `keys` is a key here (a set test, not a walk over the pairs)."""
        return not keys.isdisjoint(self._index)


YNode = YScalar | YSeq | YMap


class _LenientComposer(Composer):
    """PyYAML's composer, minus the duplicate-anchor error (CircleCI allows redefinition)."""

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        from yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent

        if self.check_event(AliasEvent):  # type: ignore[attr-defined]
            event = self.get_event()  # type: ignore[attr-defined]
            anchor = event.anchor
            if anchor not in self.anchors:
                raise yaml.composer.ComposerError(
                    None, None, f"found undefined alias {anchor!r}", event.start_mark
                )
            return self.anchors[anchor]
        event = self.peek_event()  # type: ignore[attr-defined]
        anchor = event.anchor
        self.descend_resolver(parent, index)  # type: ignore[attr-defined]
        node: Node
        if self.check_event(ScalarEvent):  # type: ignore[attr-defined]
            node = self.compose_scalar_node(anchor)
        elif self.check_event(SequenceStartEvent):  # type: ignore[attr-defined]
            node = self.compose_sequence_node(anchor)
        elif self.check_event(MappingStartEvent):  # type: ignore[attr-defined]
            node = self.compose_mapping_node(anchor)
        self.ascend_resolver()  # type: ignore[attr-defined]
        return node


class _LenientLoader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    _LenientComposer,
    yaml.constructor.SafeConstructor,
    yaml.resolver.Resolver,
):
    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _LenientComposer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)


class MemoisedResolver:
    """Mixin for a PyYAML loader or dumper: scalar tag resolution memoised.

    Composer and emitter ask `resolve` for the tag of every node (the emitter twice per
    scalar); without path resolvers (the safe loader and dumper have none) a scalar's answer
    depends only on its text and on whether it is plain, and the same texts recur. Each class
    using the mixin gets its own memo.
    """

    _scalar_tags: dict[str, str]
    # Called around every node; without path resolvers they do nothing, and C callables that
    # ignore their arguments spare a Python frame per node.
    descend_resolver: Any = {}.get  # (parent, index) -> index, ignored
    ascend_resolver: Any = [].clear  # () -> None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._scalar_tags = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is not ScalarNode:  # scalars, most of the calls, first
            if kind is MappingNode:
                return _DEFAULT_MAPPING_TAG
            if kind is SequenceNode:
                return _DEFAULT_SEQUENCE_TAG
        # BaseResolver.resolve: only a plain scalar (`implicit[0]`) is typed by its text, and
        # then `implicit[1]` no longer matters; any other scalar is a string.
        if not implicit[0]:
            return _DEFAULT_SCALAR_TAG
        tag = self._scalar_tags.get(value)
        if tag is None:
            tag = _resolve(self, kind, value, implicit)
            # Bounded in entries and in their length (a long-running process stays small: a
            # batch's scripts, which the dumper asks about, are not kept alive here).
            if len(value) <= _MEMO_TEXT_MAX:
                if len(self._scalar_tags) > 50_000:
                    self._scalar_tags.clear()
                self._scalar_tags[value] = tag
        return tag


# The longest text the memos shared across configs keep (as `targets.base.MEMO_TEXT_MAX`).
_MEMO_TEXT_MAX = 256


_resolve: Any = yaml.resolver.BaseResolver.resolve
_DEFAULT_MAPPING_TAG = yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG
_DEFAULT_SEQUENCE_TAG = yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG
_DEFAULT_SCALAR_TAG = yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG
_CBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CLoader(MemoisedResolver, _CBase):  # type: ignore[misc]
    """libyaml's composer with the scalar tag resolution memoised."""


def _compose(text: str) -> Node | None:
    try:
        return yaml.compose(text, Loader=_CLoader)  # type: ignore[no-any-return]
    except yaml.composer.ComposerError as exc:
        if "found duplicate anchor" not in str(exc):
            raise
    loader = _LenientLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]


def _span(path: str, node: Node) -> Span:
    return Span(path, node.start_mark.line + 1, node.start_mark.column + 1)


_SCALAR_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_STR_TAG = "tag:yaml.org,2002:str"
_QUOTED_STYLES = frozenset(("'", '"', "|", ">"))
# SafeConstructor's functions for the scalar tags, called directly: `construct_object` would
# also remember every node it ever constructed (the module-level constructor never forgets).
_SCALAR_FUNCTIONS = {
    tag: _SCALAR_CONSTRUCTOR.yaml_constructors[tag]
    for tag in (f"tag:yaml.org,2002:{t}" for t in ("int", "float", "bool", "null", "timestamp",
                                                   "binary"))
}


def _scalar_value(node: Any) -> Any:
    if node.style in _QUOTED_STYLES or node.tag == _STR_TAG:
        return node.value
    try:
        function = _SCALAR_FUNCTIONS.get(node.tag)
        if function is not None:
            return function(_SCALAR_CONSTRUCTOR, node)
        # Other tags on a scalar (`!!map x`): the general path, whose error gives the text.
        return yaml.constructor.SafeConstructor().construct_object(  # type: ignore[no-untyped-call]
            node, deep=True)
    except yaml.YAMLError:
        return node.value


_MAX_DEPTH = 500  # deeper nodes fail the alias bound (`_expanded_size`), in every builder


def _expanded_size(root: Node, limit: int) -> int:
    """Number of nodes after alias expansion, memoised per shared node; stops past `limit`."""
    memo: dict[int, int] = {}

    def size(node: Node, depth: int) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        if depth > _MAX_DEPTH:
            return limit + 1
        memo[key] = limit + 1  # a cycle (recursive alias) counts as unbounded
        total = 1
        if isinstance(node, SequenceNode):
            for child in node.value:
                total += size(child, depth + 1)
                if total > limit:
                    break
        elif isinstance(node, MappingNode):
            for k, v in node.value:
                total += size(k, depth + 1) + size(v, depth + 1)
                if total > limit:
                    break
        memo[key] = total
        return total

    return size(root, 0)


def _add_merged(pairs: list[tuple[YScalar, YNode]], seen: dict[str, int],
                merged: list[tuple[YScalar, YNode]]) -> None:
    """Adds the pairs of `<<` merge sources to a mapping's `pairs` and its key index `seen`:
    merged keys have lower priority than explicit ones; among merge sources, first wins."""
    for key, value in merged:
        name = key.as_str()
        if name not in seen:
            seen[name] = len(pairs)
            pairs.append((key, value))


class _Builder:
    def __init__(self, path: str, diags: Diagnostics) -> None:
        self.path = path
        self.diags = diags
        self.cache: dict[int, YNode] = {}

    def build(self, node: Any) -> YNode:
        cached = self.cache.get(id(node))
        if cached is not None:
            return cached
        tag = node.tag
        if tag not in _STANDARD_TAGS:
            # Safe loading: application tags (`!!python/...`, `!Ref`) are never constructed.
            self.diags.error("yaml-tag", f"unsupported YAML tag {tag!r}", _span(self.path, node))
            raise ConfigError
        mark = node.start_mark
        span = Span(self.path, mark.line + 1, mark.column + 1)
        kind = node.__class__
        result: YNode
        if kind is ScalarNode:
            style = node.style
            text = node.value
            value = text if tag == _STR_TAG or style in _QUOTED_STYLES else _scalar_value(node)
            result = YScalar(value, text, span, style is not None)
        elif kind is MappingNode:
            result = self.build_map(node, span)
        elif kind is SequenceNode:
            build = self.build
            result = YSeq(tuple([build(c) for c in node.value]), span)
        else:  # pragma: no cover - PyYAML has no other node kinds
            raise TypeError(node)
        self.cache[id(node)] = result
        return result

    def build_map(self, node: Any, span: Span) -> YMap:
        build = self.build
        explicit: list[tuple[YScalar, YNode]] = []
        merged: list[tuple[YScalar, YNode]] = []
        for knode, vnode in node.value:
            if knode.tag == _MERGE_TAG:
                sources = vnode.value if isinstance(vnode, SequenceNode) else [vnode]
                for src in sources:
                    built = build(src)
                    if not isinstance(built, YMap):
                        self.diags.error(
                            "yaml-merge",
                            "a merge key `<<` must refer to a mapping or a list of mappings",
                            _span(self.path, src),
                        )
                        continue
                    merged.extend(built.pairs)
                continue
            key = build(knode)
            if not isinstance(key, YScalar):
                self.diags.error(
                    "yaml-key", "mapping keys must be plain scalars", _span(self.path, knode)
                )
                continue
            explicit.append((key, build(vnode)))
        # `seen` ends up as the map's key index (name -> position in `pairs`).
        seen: dict[str, int] = {}
        pairs: list[tuple[YScalar, YNode]] = []
        for key, value in explicit:
            name = key.as_str()
            if name in seen:
                self.diags.warning(
                    "duplicate-key",
                    f"key {name!r} is defined twice in this mapping; the last one wins",
                    key.span,
                )
                pairs[seen[name]] = (key, value)
                continue
            seen[name] = len(pairs)
            pairs.append((key, value))
        if merged:
            _add_merged(pairs, seen, merged)
        return YMap(tuple(pairs), span, seen)


# An alias is `*` and an anchor `&`, each followed by its name, whose first character
# libyaml and PyYAML take from these (anything else after `*`/`&` is no alias or anchor, or
# a syntax error). A text without both has no alias, so its composed nodes form a tree.
_ALIAS_START = re.compile(r"\*[0-9A-Za-z_-]")
_ANCHOR_START = re.compile(r"&[0-9A-Za-z_-]")


class _Unbounded(Exception):
    """The tree is deeper or larger than the alias bound allows."""


def _map_span(node: Any, pairs: list[tuple[YScalar, YNode]], path: str) -> Span:
    """The span of a mapping node: a block mapping starts where its first key does, whose
    span (equal, immutable) then serves for both; one Span object less per mapping."""
    mark = node.start_mark
    line, col = mark.line + 1, mark.column + 1
    if pairs:
        first = pairs[0][0].span
        if first.line == line and first.col == col and first.path == path:
            return first
    return Span(path, line, col)


def _tree_scalar(node: Any, path: str) -> YScalar:
    """A scalar node built for the one-walk builders (their callers build `str` scalars
    inline); a tag other than the standard ones raises `_Unbounded` (the general path
    reports it)."""
    tag = node.tag
    mark = node.start_mark
    text = node.value
    if tag == _STR_TAG:
        value = text
    elif tag not in _STANDARD_TAGS:
        raise _Unbounded
    else:
        value = text if node.style in _QUOTED_STYLES else _scalar_value(node)
    return YScalar(value, text, Span(path, mark.line + 1, mark.column + 1),
                   node.style is not None)


class _TreeBuilder:
    """`_Builder` for a composed tree without aliases (`load_yaml` decides that from the
    text), where the alias bound has nothing to bound but size and depth.

    No node is shared, so nothing is memoised; scalar children are built inline (one call
    per collection, not per node), and the bound's two checks are made on the way: the node
    count (each collection adds its children) and the depth (a collection at depth 500 with
    children has nodes at 501). Anything unusual (`_Unbounded`, an error) makes `load_yaml`
    start again on the general path, so diagnostics are the general path's.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 1  # the root

    def build(self, node: Any, depth: int) -> YNode:
        # Collections call build_seq/build_map directly: one Python frame per level, so the
        # deepest tree the bound allows (500) stays within the interpreter's recursion limit.
        kind = node.__class__
        if kind is MappingNode:
            return self.build_map(node, depth)
        if kind is SequenceNode:
            return self.build_seq(node, depth)
        return _tree_scalar(node, self.path)

    def build_seq(self, node: Any, depth: int) -> YSeq:
        items = node.value
        if node.tag not in _STANDARD_TAGS or (items and depth >= _MAX_DEPTH):
            raise _Unbounded
        self.count += len(items)
        path = self.path
        down = depth + 1
        out: list[YNode] = []
        for child in items:
            kind = child.__class__
            if kind is ScalarNode:
                if child.tag == _STR_TAG:
                    mark = child.start_mark
                    text = child.value
                    out.append(YScalar(text, text, Span(path, mark.line + 1, mark.column + 1),
                                       child.style is not None))
                else:
                    out.append(_tree_scalar(child, path))
            elif kind is MappingNode:
                out.append(self.build_map(child, down))
            else:
                out.append(self.build_seq(child, down))
        mark = node.start_mark
        return YSeq(tuple(out), Span(path, mark.line + 1, mark.column + 1))

    def build_map(self, node: Any, depth: int) -> YMap:
        entries = node.value
        if node.tag not in _STANDARD_TAGS or (entries and depth >= _MAX_DEPTH):
            raise _Unbounded
        self.count += 2 * len(entries)
        path = self.path
        down = depth + 1
        merged: list[tuple[YScalar, YNode]] = []
        # `seen` ends up as the map's key index (name -> position in `pairs`).
        seen: dict[str, int] = {}
        pairs: list[tuple[YScalar, YNode]] = []
        for knode, vnode in entries:
            ktag = knode.tag
            if ktag == _STR_TAG and knode.__class__ is ScalarNode:
                mark = knode.start_mark
                name = knode.value
                key = YScalar(name, name, Span(path, mark.line + 1, mark.column + 1),
                              knode.style is not None)
            elif ktag == _MERGE_TAG:
                if vnode.__class__ is SequenceNode:
                    sources = vnode.value
                    if sources and down >= _MAX_DEPTH:
                        raise _Unbounded
                    self.count += len(sources)
                    for src in sources:
                        built = self.build(src, down + 1)
                        if type(built) is not YMap:
                            raise _Unbounded  # an error: the general path reports it
                        merged.extend(built.pairs)
                else:
                    built = self.build(vnode, down)
                    if type(built) is not YMap:
                        raise _Unbounded
                    merged.extend(built.pairs)
                continue
            else:
                built = self.build(knode, down)
                if type(built) is not YScalar:
                    raise _Unbounded
                key = built
                name = key.text if key.value is not None or key.quoted else ""  # as_str()
            kind = vnode.__class__
            value: YNode
            if kind is ScalarNode:
                if vnode.tag == _STR_TAG:
                    mark = vnode.start_mark
                    text = vnode.value
                    value = YScalar(text, text, Span(path, mark.line + 1, mark.column + 1),
                                    vnode.style is not None)
                else:
                    value = _tree_scalar(vnode, path)
            elif kind is MappingNode:
                value = self.build_map(vnode, down)
            else:
                value = self.build_seq(vnode, down)
            if name in seen:
                raise _Unbounded  # a duplicate key: the general path warns
            seen[name] = len(pairs)
            pairs.append((key, value))
        if merged:
            _add_merged(pairs, seen, merged)
        return YMap(tuple(pairs), _map_span(node, pairs, self.path), seen)


class _SharedBuilder:
    """`_TreeBuilder` for a composed graph with aliases (shared nodes, maybe cycles).

    Built nodes are memoised by identity, as `_Builder` memoises them, and the alias bound
    is checked on the way, in the order `_expanded_size` walks: each distinct node's
    expanded size is counted once (children's sizes from the memo), and the walk stops
    (`_Unbounded`: `load_yaml` takes the general path) at a cycle, past the node limit or at
    a non-empty collection at depth 500 (stricter than the bound, which lets a node it has
    already counted sit deeper). So whenever this builder finishes, the bound walk passes.
    """

    def __init__(self, path: str, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.cache: dict[int, YSeq | YMap] = {}
        self.scalars: dict[int, YScalar] = {}
        self.sizes: dict[int, int] = {}  # id(collection) -> its expanded size
        # Collections whose building started: met again before they are cached, a cycle.
        self.open: set[int] = set()

    def build(self, node: Any, depth: int) -> YNode:
        if node.__class__ is ScalarNode:
            return self.scalars.get(id(node)) or self.scalar(node)
        key = id(node)
        built = self.cache.get(key)
        if built is not None:
            return built
        if key in self.open or (node.value and depth >= _MAX_DEPTH):
            raise _Unbounded
        self.open.add(key)
        built = (self.build_map(node, depth) if node.__class__ is MappingNode
                 else self.build_seq(node, depth))
        self.cache[key] = built
        return built

    def size(self, node: Any) -> int:
        return 1 if node.__class__ is ScalarNode else self.sizes[id(node)]

    def scalar(self, node: Any) -> YScalar:
        """A scalar met for the first time (callers look in `scalars` first)."""
        scalar = self.scalars[id(node)] = _tree_scalar(node, self.path)
        return scalar

    def build_seq(self, node: Any, depth: int) -> YSeq:
        if node.tag not in _STANDARD_TAGS:
            raise _Unbounded
        down = depth + 1
        total = 1 + len(node.value)  # collections add their size less 1 below
        out: list[YNode] = []
        scalars, sizes, path = self.scalars, self.sizes, self.path
        for child in node.value:
            if child.__class__ is ScalarNode:
                built = scalars.get(id(child))
                if built is None:
                    if child.tag == _STR_TAG:  # most: `_tree_scalar`, inline
                        mark = child.start_mark
                        text = child.value
                        built = scalars[id(child)] = YScalar(
                            text, text, Span(path, mark.line + 1, mark.column + 1),
                            child.style is not None)
                    else:
                        built = scalars[id(child)] = _tree_scalar(child, path)
                out.append(built)
            else:
                out.append(self.build(child, down))
                total += sizes[id(child)] - 1
        self.finish(node, total)
        mark = node.start_mark
        return YSeq(tuple(out), Span(self.path, mark.line + 1, mark.column + 1))

    def build_map(self, node: Any, depth: int) -> YMap:
        if node.tag not in _STANDARD_TAGS:
            raise _Unbounded
        down = depth + 1
        total = 1
        scalars, sizes, path = self.scalars, self.sizes, self.path
        merged: list[tuple[YScalar, YNode]] = []
        seen: dict[str, int] = {}
        pairs: list[tuple[YScalar, YNode]] = []
        for knode, vnode in node.value:
            if knode.tag == _MERGE_TAG:
                total += 1  # the `<<` key
                if vnode.__class__ is SequenceNode:
                    total += self.merge_list(vnode, down)
                    sources = vnode.value
                else:
                    self.build(vnode, down)
                    total += self.size(vnode)
                    sources = [vnode]
                for src in sources:
                    built = self.cache.get(id(src))
                    if type(built) is not YMap:
                        raise _Unbounded  # an error: the general path reports it
                    merged.extend(built.pairs)
                continue
            if knode.__class__ is not ScalarNode:
                raise _Unbounded  # a collection as a key: the general path reports it
            key = scalars.get(id(knode))
            if key is None:
                if knode.tag == _STR_TAG:  # most: `_tree_scalar`, inline
                    mark = knode.start_mark
                    text = knode.value
                    key = scalars[id(knode)] = YScalar(
                        text, text, Span(path, mark.line + 1, mark.column + 1),
                        knode.style is not None)
                else:
                    key = scalars[id(knode)] = _tree_scalar(knode, path)
            value: YNode | None
            if vnode.__class__ is ScalarNode:
                value = scalars.get(id(vnode))
                if value is None:
                    if vnode.tag == _STR_TAG:  # most: `_tree_scalar`, inline
                        mark = vnode.start_mark
                        text = vnode.value
                        value = scalars[id(vnode)] = YScalar(
                            text, text, Span(path, mark.line + 1, mark.column + 1),
                            vnode.style is not None)
                    else:
                        value = scalars[id(vnode)] = _tree_scalar(vnode, path)
                total += 2
            else:
                value = self.build(vnode, down)
                total += 1 + sizes[id(vnode)]
            name = key.text if key.value is not None or key.quoted else ""  # as_str()
            if name in seen:
                raise _Unbounded  # a duplicate key: the general path warns
            seen[name] = len(pairs)
            pairs.append((key, value))
        self.finish(node, total)
        if merged:
            _add_merged(pairs, seen, merged)
        return YMap(tuple(pairs), _map_span(node, pairs, self.path), seen)

    def merge_list(self, node: Any, depth: int) -> int:
        """The expanded size of the list after `<<` (counted like any node), its maps built
        (the list itself is no part of the tree)."""
        key = id(node)
        known = self.sizes.get(key)
        if known is None and (key in self.open or (node.value and depth >= _MAX_DEPTH)):
            raise _Unbounded
        total = 1
        for src in node.value:
            self.build(src, depth + 1)
            total += self.size(src)
        if known is None:
            self.finish(node, total)
        return total

    def finish(self, node: Any, total: int) -> None:
        if total > self.limit:
            raise _Unbounded
        self.sizes[id(node)] = total


def _lenient_fixes(text: str) -> tuple[str, list[tuple[int, int, str]]]:
    """Rewrite what libyaml refuses but CircleCI's parser accepts, recording each change.

    - a tab in the indentation of a comment-only line (expanded to 8-column tab stops);
    - an indented first line followed by top-level keys at column 0 (dedented).
    Only used after a parse error, so valid YAML is never rewritten.
    """
    lines = text.split("\n")
    fixes: list[tuple[int, int, str]] = []
    for i, line in enumerate(lines):
        stripped = line.lstrip(" \t")
        if stripped.startswith("#") and "\t" in line[: len(line) - len(stripped)]:
            lines[i] = line[: len(line) - len(stripped)].expandtabs(8) + stripped
            fixes.append((i + 1, 1, "a tab in the indentation of a comment line"))
    content = [i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
    if len(content) > 1:
        first, second = content[0], content[1]
        if lines[first][:1] == " " and lines[second][:1] not in (" ", "\t", "-"):
            lines[first] = lines[first].lstrip(" ")
            fixes.append((first + 1, 1, "an indented first line"))
    return "\n".join(lines), fixes


def load_yaml(text: str, path: str, diags: Diagnostics) -> YNode | None:
    """Parse one YAML document. Records diagnostics and raises ConfigError on fatal errors."""
    try:
        try:
            root = _compose(text)
        except yaml.MarkedYAMLError:
            fixed, fixes = _lenient_fixes(text)
            if not fixes:
                raise
            try:
                root = _compose(fixed)
            except yaml.MarkedYAMLError:
                root = _compose(text)  # report the error of the original text
            for line, col, what in fixes:
                diags.warning("yaml-lenient", f"accepted {what}, as CircleCI does (strict YAML"
                              " parsers refuse it)", Span(path, line, col))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        span = Span(path, mark.line + 1, mark.column + 1) if mark else Span(path, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        diags.error("yaml-syntax", f"invalid YAML: {problem}", span)
        raise ConfigError from exc
    except yaml.YAMLError as exc:
        diags.error("yaml-syntax", f"invalid YAML: {exc}", Span(path, 1, 1))
        raise ConfigError from exc
    if root is None:
        return None
    # The tree is built in one walk that also checks the alias bound (size, depth, cycles),
    # instead of a bound walk and a memoising build; without aliases nothing is shared.
    try:
        if not (_ALIAS_START.search(text) and _ANCHOR_START.search(text)):
            tree = _TreeBuilder(path)
            built = tree.build(root, 0)
            if tree.count <= MAX_EXPANDED_NODES:
                return built
        else:
            return _SharedBuilder(path, MAX_EXPANDED_NODES).build(root, 0)
    except _Unbounded:
        pass  # the general path below reports what stopped it
    if _expanded_size(root, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
        diags.error(
            "alias-expansion-limit",
            f"YAML aliases expand to more than {MAX_EXPANDED_NODES} nodes (or recurse);"
            " refusing to expand (a 'billion laughs' document?)",
            _span(path, root),
        )
        raise ConfigError
    return _Builder(path, diags).build(root)
