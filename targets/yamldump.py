"""The one configured YAML dumper for the GitHub and GitLab targets.

Readable and stable: insertion order kept, literal blocks for multi-line strings, fixed width;
`on` and other YAML 1.1 booleans-in-disguise are quoted by the representer. No aliases, except
for the values a target marks with `anchored`: text every job of a file would otherwise repeat
(a shim, a shell library) is written once with `&name` and then as `*name`.

libyaml's emitter writes the text; it is fed the events its serializer would make of the
representer's node tree, built straight from the data (`_events`), which is several times
cheaper than building the nodes (docs/performance.md, session 4).
"""

from __future__ import annotations

import io
import re
from collections import deque
from typing import Any, overload

import yaml
from cicompile.frontend.yaml_loader import MemoisedResolver
from cicompile.targets.base import MEMO_TEXT_MAX
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

# libyaml's emitter (5-10x faster than PyYAML's Python one); both write block sequences
# "indentless" (`key:` then `- item` at the same column), so the output is the same either way.
_Base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# The events of `_events` carry UTF-8 bytes, which only libyaml's emitter takes: PyYAML's own
# (PyYAML installed without libyaml) is given the representer's node tree.
_LIBYAML = _Base is not yaml.SafeDumper


_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


class AnchoredStr(str):
    """A string `dump_yaml` writes once under an anchor when the same object appears again."""

    anchor: str


class AnchoredDict(dict[str, Any]):
    """A mapping `dump_yaml` writes once under an anchor when the same object appears again.

    Read-only: it is shared by every place that uses it, so an in-place change meant for one
    job would silently change all of them."""

    anchor: str

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"anchored mapping &{self.anchor} is shared and read-only")

    __setitem__ = __delitem__ = __ior__ = _read_only  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]


@overload
def anchored(anchor: str, value: str) -> AnchoredStr: ...


@overload
def anchored(anchor: str, value: dict[str, Any]) -> AnchoredDict: ...


def anchored(anchor: str, value: str | dict[str, Any]) -> AnchoredStr | AnchoredDict:
    """VALUE as an object that, used at several places of one document, is written in full at
    the first and as the alias `*ANCHOR` at the others (written plainly when used once).

    Only the identity of the returned object counts: reuse the object itself."""
    out = AnchoredStr(value) if isinstance(value, str) else AnchoredDict(value)
    out.anchor = anchor
    return out


_ANCHORED = (AnchoredStr, AnchoredDict)
# The names libyaml gives anchors ("id%03d"); dump_yaml renames them.
_LIBYAML_ANCHOR = re.compile(r"([&*])(id[0-9]{3,})")


class _Dumper(MemoisedResolver, _Base):  # type: ignore[misc]
    # id → [object, uses] of the anchored values the representer's route represented, in
    # order of first use (for _name_anchors).
    anchored_uses: dict[int, list[Any]]
    anchors_named: bool  # the events carry the anchors' own names (see _events)

    def ignore_aliases(self, data: Any) -> bool:
        return type(data) not in _ANCHORED

    def represent_data(self, data: Any) -> yaml.Node:
        # The generated documents are dicts, lists and strings: those are built here directly,
        # with the nodes SafeRepresenter would build (no aliases, block style, keys unsorted);
        # anything else takes the general path.
        kind = type(data)
        if kind is str and self.default_style is None:
            # _str_representer without represent_scalar's bookkeeping (aliases are ignored)
            return yaml.ScalarNode(_STR_TAG, data, style="|" if _literal(data) else None)
        if kind is str:
            return _str_representer(self, data)
        if self.sort_keys or self.default_flow_style is None:  # not how dump_yaml calls it
            return super().represent_data(data)  # type: ignore[no-any-return]
        if kind is dict:
            node = self.represent_data
            return yaml.MappingNode(_MAP_TAG, [(node(k), node(v)) for k, v in data.items()],
                                    flow_style=self.default_flow_style)
        if kind is list:
            node = self.represent_data
            return yaml.SequenceNode(_SEQ_TAG, [node(item) for item in data],
                                     flow_style=self.default_flow_style)
        if kind in _ANCHORED:
            seen = self.__dict__.setdefault("anchored_uses", {})
            seen.setdefault(id(data), [data, 0])[1] += 1
        return super().represent_data(data)  # type: ignore[no-any-return]




def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # Multi-line scripts read best as literal blocks. A line with trailing spaces cannot be a
    # literal block (the emitter would refuse or the text would change), so such strings keep
    # the emitter's default (quoted) style: the output must say exactly what the config said.
    if _literal(data):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


def _literal(data: str) -> bool:
    return "\n" in data and not any(line != line.rstrip() for line in data.split("\n"))


_Dumper.add_representer(str, _str_representer)
_Dumper.add_representer(AnchoredStr, lambda dumper, data: _str_representer(dumper, str(data)))
_Dumper.add_representer(AnchoredDict, yaml.SafeDumper.represent_dict)


def _name_anchors(text: str, dumper: _Dumper) -> str:
    """The anchors libyaml named id001, id002… renamed after the values' `anchor`s.

    Each `&idN` is written where its value first appears, so in text order they are the values
    in the order they were first represented. The renaming is textual, so it is done only when
    every `&idN` / `*idN` in the text is one of ours (the counts agree); otherwise the generic
    names stay, which is still the same YAML."""
    shared = [(obj, uses) for obj, uses in getattr(dumper, "anchored_uses", {}).values()
              if uses > 1]
    if not shared:
        return text
    tokens = _LIBYAML_ANCHOR.findall(text)
    defined = [name for sigil, name in tokens if sigil == "&"]
    if len(defined) != len(shared) or len(tokens) != sum(uses for _, uses in shared):
        return text
    names = dict(zip(defined, _anchor_names([obj.anchor for obj, _ in shared]), strict=True))
    return _LIBYAML_ANCHOR.sub(lambda m: m[1] + names[m[2]], text)


def _anchor_names(anchors: list[str]) -> list[str]:
    """The names written for values anchored ANCHORS, in order of first use."""
    out: list[str] = []
    taken: set[str] = set()
    for anchor in anchors:
        name, i = anchor, 2
        while name in taken:  # two values under one name: later aliases would mean the last
            name, i = f"{anchor}-{i}", i + 1
        taken.add(name)
        out.append(name)
    return out


# What libyaml's emitter accepts as an anchor name.
_ANCHOR_NAME = re.compile(r"[0-9A-Za-z_-]+")


# Events that carry no data: one object serves every node (the emitter only reads them).
# Their texts are UTF-8 bytes, which the emitter takes as they are (it encodes a str each
# time it emits it).
_MAP_TAG_UTF8, _SEQ_TAG_UTF8, _STR_TAG_UTF8 = (t.encode() for t in (_MAP_TAG, _SEQ_TAG, _STR_TAG))
_DOCUMENT_START = DocumentStartEvent(explicit=False)
_DOCUMENT_END = DocumentEndEvent(explicit=False)
_MAPPING_START = MappingStartEvent(None, _MAP_TAG_UTF8, True, flow_style=False)
_MAPPING_END = MappingEndEvent()
_SEQUENCE_START = SequenceStartEvent(None, _SEQ_TAG_UTF8, True, flow_style=False)
_SEQUENCE_END = SequenceEndEvent()
# text → its scalar event when it is a plain `str` value (no anchor): the event depends on the
# text alone, and the same keys and values recur across jobs, files and configs.
_STR_EVENTS: dict[str, ScalarEvent] = {}
# (type, value) → its scalar event, for None, booleans and integers (`timeout-minutes: 10`);
# not floats, where 0.0 and -0.0 are equal but written differently.
_OTHER_EVENTS: dict[tuple[type, Any], ScalarEvent] = {}
_MEMO_TYPES = (type(None), bool, int)
_SCALAR = yaml.ScalarNode


class _Unsupported(Exception):
    """A value the event walk does not write itself (a set, a tuple…), or an anchor name
    libyaml would refuse: the document then takes the representer's route."""


def _str_event(dumper: _Dumper, text: str) -> ScalarEvent:
    # What CEmitter.serialize makes of the string's ScalarNode: implicit flags from the
    # emitter's two `resolve` questions (a quoted string is always a str).
    plain = dumper.resolve(_SCALAR, text, (True, False)) == _STR_TAG
    return ScalarEvent(None, _STR_TAG_UTF8, (plain, True), text.encode(),
                       style="|" if _literal(text) else None)


def _node_event(dumper: _Dumper, node: yaml.Node) -> ScalarEvent:
    if type(node) is not _SCALAR:
        raise _Unsupported
    tag, value = node.tag, node.value
    implicit = (dumper.resolve(_SCALAR, value, (True, False)) == tag,
                dumper.resolve(_SCALAR, value, (False, True)) == tag)
    return ScalarEvent(None, tag, implicit, value, style=node.style)


def _events(dumper: _Dumper, data: Any) -> list[Any]:
    """The events `dumper.represent(data)` has libyaml's serializer emit, built from the data
    in one walk: no node tree, no `resolve` callback per scalar, and one event object per
    distinct string (`_STR_EVENTS`).

    Anchors: an anchored value seen again becomes an alias (not walked again, as in the
    serializer), and the value's first event gets the anchor, named as `_name_anchors` would
    rename it (`dumper.anchors_named` is then true: `_dump` still has to rule out
    lookalikes). A name libyaml would refuse raises `_Unsupported`: the representer's route
    writes libyaml's names, which `_name_anchors` renames in the text."""
    out: list[Any] = [_DOCUMENT_START]
    add = out.append
    memo, others = _STR_EVENTS, _OTHER_EVENTS
    local: dict[str, ScalarEvent] = {}  # the long texts' events, for this document
    if len(memo) > 50_000:  # bounded: a long-running process stays small
        memo.clear()
    if len(others) > 1_000:
        others.clear()
    uses: dict[int, list[Any]] = {}  # id → [object, uses] of the anchored values
    refs: dict[int, list[Any]] = {}  # id → the first event of an anchored value, its aliases

    def string(text: str) -> None:
        event = memo.get(text) or local.get(text)
        if event is None:
            event = _str_event(dumper, text)
            # Long texts (scripts) stay in this document's memo only: the shared one would
            # keep megabytes of them alive in a long batch.
            (memo if len(text) <= MEMO_TEXT_MAX else local)[text] = event
        add(event)

    def walk(value: Any) -> None:
        kind = type(value)
        if kind is str:
            string(value)
        elif kind is dict:
            add(_MAPPING_START)
            # Keys and most values are strings seen before: their events without a call.
            for k, v in value.items():
                if type(k) is str and (event := memo.get(k)) is not None:
                    add(event)
                else:
                    walk(k)
                if type(v) is str and (event := memo.get(v)) is not None:
                    add(event)
                else:
                    walk(v)
            add(_MAPPING_END)
        elif kind is list:
            add(_SEQUENCE_START)
            for item in value:
                if type(item) is str and (event := memo.get(item)) is not None:
                    add(event)
                else:
                    walk(item)
            add(_SEQUENCE_END)
        elif kind is AnchoredStr or kind is AnchoredDict:
            key = id(value)
            seen = uses.get(key)
            if seen is not None:
                seen[1] += 1
                alias = AliasEvent(None)  # named below
                refs[key].append(alias)
                add(alias)
                return
            uses[key] = [value, 1]
            if kind is AnchoredStr:
                refs[key] = [_str_event(dumper, str(value))]
                add(refs[key][0])
                return
            refs[key] = [MappingStartEvent(None, _MAP_TAG_UTF8, True, flow_style=False)]
            add(refs[key][0])
            for k, v in value.items():
                walk(k)
                walk(v)
            add(_MAPPING_END)
        elif kind is Verbatim:
            add(_node_event(dumper, _verbatim_representer(dumper, value)))
        elif kind in _MEMO_TYPES:
            event = others.get((kind, value))
            if event is None:
                event = others[kind, value] = _node_event(dumper, dumper.represent_data(value))
            add(event)
        else:  # floats, dates: the representer's scalar node
            add(_node_event(dumper, dumper.represent_data(value)))

    walk(data)
    add(_DOCUMENT_END)
    shared = [key for key, (_, n) in uses.items() if n > 1]  # in order of first use
    names = _anchor_names([uses[key][0].anchor for key in shared])
    if not all(_ANCHOR_NAME.fullmatch(n) for n in names):
        raise _Unsupported
    dumper.anchors_named = bool(shared)
    for key, name in zip(shared, names, strict=True):
        for event in refs[key]:
            event.anchor = name
    return out


def _new_dumper(stream: io.StringIO) -> _Dumper:
    return _Dumper(stream, sort_keys=False, default_flow_style=False, width=100,
                   allow_unicode=True, indent=2)


def dump_yaml(data: Any, header: str = "") -> str:
    return _dump(data, header, events=_LIBYAML)


def _dump(data: Any, header: str, *, events: bool) -> str:
    """`events`: libyaml's emitter fed the events of `_events`; otherwise (and for a value that
    walk does not write) the representer's node tree through libyaml's serializer. Both give
    the same bytes (tests/test_fast_paths.py)."""
    stream = io.StringIO()
    dumper = _new_dumper(stream)
    try:
        dumper.open()
        try:
            if not events:
                raise _Unsupported
            todo = _events(dumper, data)
        except _Unsupported:
            dumper.anchors_named = False
            dumper.represent(data)
        else:
            deque(map(dumper.emit, todo), maxlen=0)  # the loop in C
        dumper.close()
    finally:
        dumper.dispose()
    text = stream.getvalue()
    if not dumper.anchors_named:
        text = _name_anchors(text, dumper)
    elif ("&id" in text or "*id" in text) and _LIBYAML_ANCHOR.search(text):
        # A lookalike of libyaml's names: `_name_anchors` would keep the generic ones.
        return _dump(data, header, events=False)
    if header:
        text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + text
    return text


class Verbatim(str):
    """A number written exactly as the source wrote it (`3.10` must not become `3.1`)."""

    tag = "tag:yaml.org,2002:str"

    def __new__(cls, text: str, tag: str) -> Verbatim:
        self = super().__new__(cls, text)
        self.tag = tag
        return self


def _verbatim_representer(dumper: yaml.SafeDumper, data: Verbatim) -> yaml.ScalarNode:
    # Plain style when the text still resolves to `tag`; the emitter quotes it otherwise.
    return dumper.represent_scalar(data.tag, str(data))


_Dumper.add_representer(Verbatim, _verbatim_representer)
