"""Fast paths taken for speed (docs/performance.md) agree with the plain code they replace."""

from __future__ import annotations

import functools
import io
import random
import re
import sys
from typing import Any

import pytest
import yaml
from cicompile.targets import make, yamldump

# Strings built from these pieces hit the corners: whitespace of every kind at a line's end,
# `define`/`endef` lines, backslashes before newlines.
PIECES = ["a", " ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\xa0", "\u2003",
          "\u200b", "\\", "define", "endef", " define x", "\nendef\n", "x\\\n", "é"]


def _samples(n: int) -> list[str]:
    rnd = random.Random(7)
    return ["".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 10))) for _ in range(n)]


def test_define_check_prefilter_never_hides_a_hazard() -> None:
    from cicompile.targets import jobscript
    from cicompile.targets.base import heredoc_delimiter

    pieces = ["CICOMPILE_EOF", "CICOMPILE_EOF_2", "\n", "\r\n", "\x85", "x"]
    rnd = random.Random(3)
    for data in _samples(20_000) + ["".join(rnd.choices(pieces, k=rnd.randint(0, 8)))
                                    for _ in range(5_000)]:
        match, found = jobscript.MAKE_HAZARD.search(data), jobscript.make_hazard(data)
        assert (found and found.span()) == (match and match.span())
        if match:
            with pytest.raises(AssertionError):
                make._check_define_body("node", data)
        else:
            make._check_define_body("node", data)
        # run steps: control characters once newlines are dropped, the regex without them
        assert bool(jobscript._CONTROL.search(data.replace("\n", ""))) == \
            bool(jobscript._CONTROL_BUT_NEWLINE.search(data))
        # heredoc_delimiter's shortcut when the text cannot hold the delimiter as a line
        lines, delim, i = set(data.splitlines()), "CICOMPILE_EOF", 1
        while delim in lines:
            i += 1
            delim = f"CICOMPILE_EOF_{i}"
        assert heredoc_delimiter(data) == delim


def test_direct_representation_gives_the_representer_s_bytes() -> None:
    class Plain(yamldump._Dumper):  # type: ignore[misc,name-defined]
        def represent_data(self, data: Any) -> yaml.Node:
            return yaml.representer.SafeRepresenter.represent_data(self, data)  # type: ignore[no-any-return]

        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            return yaml.resolver.Resolver.resolve(self, kind, value, implicit)

    data = {"on": {"push": None}, "jobs": [{"run": s, "n": i, "ok": i % 2 == 0, "f": 1.5}
                                          for i, s in enumerate(_samples(300))],
            "nested": {"a": [[], {}, [1, "2", "yes", "0x10", "~", ""]]},
            # Strings as list items and as keys.
            "items": _samples(300), "keys": {s: s for s in _samples(300)}}
    options: dict[str, Any] = {"sort_keys": False, "default_flow_style": False, "width": 100,
                               "allow_unicode": True, "indent": 2}
    assert yaml.dump(data, Dumper=yamldump._Dumper, **options) == \
        yaml.dump(data, Dumper=Plain, **options)


def _conditions() -> list[Any]:
    from cicompile.conditions import (
        FALSE,
        TRUE,
        And,
        Const,
        IsKind,
        Match,
        Not,
        Or,
        Pattern,
        Trigger,
    )
    from cicompile.conditions import RefKind as K

    atoms = [IsKind(K.BRANCH), IsKind(K.TAG), Match(K.BRANCH, Pattern("main")),
             Match(K.BRANCH, Pattern("rel-.*", regex=True)), Match(K.TAG, Pattern("v1")),
             Trigger("api")]
    return [TRUE, FALSE, Const(True), Const(False), *atoms, *(Not(a) for a in atoms),
            And((atoms[2], Not(atoms[3]))), Or((atoms[1], atoms[2])), And(()), Or(())]


def test_constant_tests_agree_with_equality() -> None:
    """`_is_const` (a class test) decides `c == TRUE`/`c == FALSE` as equality does."""
    from cicompile.conditions import FALSE, TRUE, _is_const

    for c in _conditions():
        assert _is_const(c, True) == (c == TRUE)
        assert _is_const(c, False) == (c == FALSE)


def test_condition_algebra_ignores_how_constants_are_built() -> None:
    """all_of / any_of / implies treat a fresh Const like TRUE/FALSE (they test the class)."""
    from cicompile.conditions import FALSE, TRUE, Const, all_of, any_of, implies

    conds = _conditions()
    rnd = random.Random(3)
    for _ in range(2_000):
        items = [rnd.choice(conds) for _ in range(rnd.randint(0, 4))]
        fresh = [Const(c.value) if isinstance(c, Const) else c for c in items]
        assert all_of(items) == all_of(fresh)
        assert any_of(items) == any_of(fresh)
        a, b = rnd.choice(conds), rnd.choice(conds)
        assert implies(a, b) == implies(Const(a.value) if isinstance(a, Const) else a, b)
    assert all_of([TRUE, Const(True)]) == TRUE and all_of([Const(False)]) == FALSE
    assert any_of([Const(False)]) == FALSE and any_of([FALSE, Const(True)]) == TRUE
    assert implies(Const(False), TRUE) and implies(FALSE, Const(True))


def _assert_plain_existence(wf: Any) -> int:
    """Each node's `exists`, recomputed node by node without compute_existence's memos (the
    code they replaced), equals the pass's; the number of nodes checked."""
    from cicompile.conditions import FALSE, all_of, any_of
    from cicompile.passes.compute_existence import by_kind, filter_condition, schedule_condition

    exists: dict[str, Any] = {}
    for n in wf.nodes:
        own = all_of([schedule_condition(wf), wf.condition, filter_condition(n.filters)])
        if n.requires:
            own = all_of([own, any_of(exists.get(r, FALSE) for r in n.requires)])
        exists[n.name] = by_kind(own)
        assert n.exists == exists[n.name], n.name
    return len(wf.nodes)


@pytest.mark.parametrize("case", ["kitchen-sink", "release-pipeline", "seed-branch-level",
                                  "v21-runtime-when", "schedule", "v21-expressions"])
def test_existence_memo_gives_each_node_its_own_formula(case: str) -> None:
    """compute_existence computes filter formulas and canonical forms once per distinct
    value; node by node, without the memo, the formulas are the same."""
    from pathlib import Path

    from cicompile import build_ir
    from cicompile.diagnostics import Diagnostics
    from cicompile.ir import Pipeline

    text = (Path(__file__).parent.parent / "golden" / case / "input.yml").read_text()
    pipeline = build_ir(text, "input.yml", Diagnostics())
    assert isinstance(pipeline, Pipeline)
    assert sum(_assert_plain_existence(wf) for wf in pipeline.workflows) > 1


def _shape(node: Any) -> Any:
    """A YAML tree as plain data, with every scalar's text, type, quoting and position."""
    from cicompile.frontend.yaml_loader import YScalar, YSeq

    if isinstance(node, YScalar):
        return (node.text, node.value, node.quoted, node.span)
    if isinstance(node, YSeq):
        return [_shape(i) for i in node.items]
    return [(_shape(k), _shape(v)) for k, v in node.pairs]


def _v21_inputs() -> list[Any]:
    return [f for f in _yaml_inputs() if "version: 2.1" in f.read_text()]


def test_finaliser_skip_changes_nothing() -> None:
    """expand_config skips the finaliser when no run-time pipeline value was referenced (and
    the source has no marker character); run always, it gives the same tree and warnings."""
    from cicompile.diagnostics import ConfigError, Diagnostics
    from cicompile.frontend import expand
    from cicompile.frontend.yaml_loader import YMap, load_yaml

    skipped = run = 0
    for f in _v21_inputs():
        text = f.read_text()
        outs = []
        for source in (text, None):  # None: the source is unknown, the finaliser runs
            d = Diagnostics()
            root = load_yaml(text, "c.yml", d)
            assert isinstance(root, YMap)
            try:
                outs.append((_shape(expand.expand_config(root, d, source=source)), d.sorted()))
            except ConfigError:
                outs.append((None, d.sorted()))
        assert outs[0] == outs[1], f.name
        if expand._MARK_OPEN in repr(outs[1]) or "pipeline." in text:
            run += 1
        else:
            skipped += 1
    assert skipped and run, (skipped, run)
    # A marker character written in the source keeps the finaliser on.
    text = ("version: 2.1\njobs:\n  b:\n    docker: [{image: x}]\n    steps:\n"
            "      - run: echo \ue000git.branch\ue001\nworkflows:\n  w: {jobs: [b]}\n")
    d = Diagnostics()
    root = load_yaml(text, "c.yml", d)
    assert isinstance(root, YMap)
    a = _shape(expand.expand_config(root, d, source=text))
    assert a == _shape(expand.expand_config(root, Diagnostics()))


def test_memoised_tag_resolution_agrees_with_pyyaml() -> None:
    from cicompile.frontend.yaml_loader import _CLoader
    from cicompile.targets.yamldump import _Dumper
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    values = ["", "a", "1", "1.0", "0x1f", "true", "no", "~", "null", "2020-01-01", "<<", "=",
              ".inf", "-.NaN", "0o17", "1_000", "+1", "1e3", "12:30:00", "yes please", " 1"]
    dumper = _Dumper(io.StringIO())
    for cls, obj in ((_CLoader, _CLoader("")), (_Dumper, dumper)):
        for value in values * 2:  # the second round reads the memo
            for implicit in ((True, False), (False, True), (True, True), (False, False)):
                expected = yaml.resolver.BaseResolver.resolve(obj, ScalarNode, value, implicit)
                assert cls.resolve(obj, ScalarNode, value, implicit) == expected
        for kind in (MappingNode, SequenceNode):
            expected = yaml.resolver.BaseResolver.resolve(obj, kind, None, (True, False))
            assert cls.resolve(obj, kind, None, (True, False)) == expected
    dumper.dispose()


def test_memos_shared_across_configs_keep_no_long_text() -> None:
    """A long batch (`cicompile audit`, a library compiling many configs) keeps no script
    alive in the memos that outlive a config: those are bounded in entries, and texts longer
    than MEMO_TEXT_MAX are not kept (the YAML tag resolver: the dumper asks it about every
    string it writes, the loader about every plain scalar)."""
    from cicompile.diagnostics import Diagnostics
    from cicompile.frontend.yaml_loader import _CLoader, load_yaml
    from cicompile.targets import jobscript
    from cicompile.targets.base import MEMO_TEXT_MAX, sh_quote
    from cicompile.targets.yamldump import _STR_EVENTS, _Dumper

    long = "echo " + "x" * MEMO_TEXT_MAX  # one line: a plain scalar, in the loader too
    script = long + "\nmake test\n"
    load_yaml(f"a: {long}\nb: [{long}1]\n", "c.yml", Diagnostics())
    yamldump.dump_yaml({"a": long, "b": [script, {long + "k": long + "v"}]})
    size = jobscript._sh_memo.cache_info().currsize
    assert jobscript.sh(long) == jobscript._sh(long) and sh_quote(long) == f"'{long}'"
    assert jobscript._sh_memo.cache_info().currsize == size
    for memo in (_CLoader._scalar_tags, _Dumper._scalar_tags, _STR_EVENTS):
        assert max(map(len, memo), default=0) <= MEMO_TEXT_MAX
        assert len(memo) <= 50_001


def test_c_string_table_gives_the_loop_s_words() -> None:
    from cicompile.targets import jobscript

    def loop(s: str) -> str:  # the per-character code the table replaced
        out = []
        for ch in s.replace("\0", ""):
            if ch in jobscript._C_ESCAPES:
                out.append(jobscript._C_ESCAPES[ch])
            elif ord(ch) < 0x20 or ord(ch) == 0x7F:
                out.append(f"\\x{ord(ch):02x}")
            else:
                out.append(ch)
        return "$'" + "".join(out) + "'"

    rnd = random.Random(11)
    alphabet = [*map(chr, range(0x80)), "é", "\u2028", "\x85", "'\\"]
    for _ in range(5_000):
        s = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12)))
        quoted = jobscript.sh(s)
        if quoted.startswith("$'"):
            assert quoted == loop(s), repr(s)
    assert jobscript.sh("a\nb\0c\x7f'\\") == loop("a\nb\0c\x7f'\\")


def _yaml_inputs() -> list[Any]:
    """Every golden input (error cases too), then the corpus."""
    from tests.corpus_tools import corpus_files
    from tests.golden_cases import case_dirs

    return [*(c / "input.yml" for c in case_dirs()), *corpus_files()]


@functools.cache
def _pipelines() -> tuple[Any, ...]:
    """The IR (`front_end`) of each of `_yaml_inputs()`, None where it has errors: computed
    once per test process for the tests that read it (the IR is immutable)."""
    from cicompile import front_end

    return tuple(front_end(f.read_text(errors="replace")).pipeline for f in _yaml_inputs())


# Anchors and aliases at every depth: shared scalars and collections, a recursive alias, a
# "billion laughs", a document nested past the walk's depth bound with a shared scalar.
_DEEP = "a: &s x\nb: " + "[" * 520 + "*s" + "]" * 520 + "\n"
_ALIAS_DOCS = [
    "a: &x [1, 2, &y {k: v}]\nb: *x\nc: [*x, *y, *x]\nd: {*y : 1}\n",
    "a: &r [1, *r]\n",
    "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\nd: [*c, *c, *c, *c]\n",
    _DEEP,
    "a: " + "[" * 520 + "&s x" + "]" * 520 + "\nb: *s\n",
    "k: &k key\n*k : v\nl: [*k, *k]\n",
]


def test_general_builder_gives_each_scalar_what_the_scalar_rule_gives() -> None:
    """The general path's builder gives each scalar the value, text, quoting and position the
    scalar rule gives (checked against the composed nodes); the one-walk builders are
    compared with it in test_tree_builders_give_what_the_general_path_gives."""
    from cicompile.diagnostics import Diagnostics, Span
    from cicompile.frontend import yaml_loader as yl
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    checked = 0
    seen: set[int] = set()

    def walk(cnode: Any, ynode: Any) -> None:
        nonlocal checked
        if id(cnode) in seen:  # an alias: checked where first met (the builder shares it)
            assert ynode is built[id(cnode)]
            return
        seen.add(id(cnode))
        built[id(cnode)] = ynode
        if isinstance(cnode, ScalarNode):
            general = (cnode.value if cnode.tag == yl._STR_TAG
                       or cnode.style in yl._QUOTED_STYLES else yl._scalar_value(cnode))
            mark = cnode.start_mark
            assert isinstance(ynode, yl.YScalar)
            assert (ynode.value, ynode.text, ynode.quoted, ynode.span) == (
                general, cnode.value, cnode.style is not None,
                Span("c.yml", mark.line + 1, mark.column + 1))
            assert type(ynode.value) is type(general)
            checked += 1
        elif isinstance(cnode, SequenceNode):
            for c, y in zip(cnode.value, ynode.items, strict=True):
                walk(c, y)
        elif isinstance(cnode, MappingNode):
            # Merge keys and duplicates reorder pairs: only maps without them are paired up.
            if any(k.tag == yl._MERGE_TAG for k, _ in cnode.value):
                return
            if len(cnode.value) != len(ynode.pairs):
                return
            for (ck, cv), (yk, yv) in zip(cnode.value, ynode.pairs, strict=True):
                walk(ck, yk)
                walk(cv, yv)

    for text in [f.read_text() for f in _yaml_inputs()] + _ALIAS_DOCS:
        try:
            root = yl._compose(text)
        except yaml.YAMLError:
            continue
        if root is None:
            continue
        if yl._expanded_size(root, yl.MAX_EXPANDED_NODES) > yl.MAX_EXPANDED_NODES:
            continue  # load_yaml refuses it before building (a recursive alias would not end)
        seen.clear()
        built: dict[int, Any] = {}
        walk(root, yl._Builder("c.yml", Diagnostics()).build(root))
    assert checked > 20_000


def test_templated_tests_scalar_children_inline_as_the_recursion() -> None:
    """`templated` tests scalar children without a call: for every collection of every 2.1
    input it answers what the plain recursion answers."""
    from cicompile.diagnostics import Diagnostics
    from cicompile.frontend import expand
    from cicompile.frontend.yaml_loader import YMap, YScalar, YSeq, load_yaml

    def plain(node: Any) -> bool:
        if isinstance(node, YScalar):
            return isinstance(node.value, str) and "<<" in node.text
        if isinstance(node, YSeq):
            return any(plain(i) for i in node.items)
        return any(plain(k) or plain(v) for k, v in node.pairs)

    answers = set()
    for f in _v21_inputs():
        root = load_yaml(f.read_text(), "c.yml", Diagnostics())
        expander = expand._Expander(Diagnostics())
        stack: list[Any] = [root]
        while stack:
            node = stack.pop()
            if isinstance(node, YSeq | YMap):
                answers.add(expander.templated(node))
                assert expander.templated(node) == plain(node)
                stack.extend(node.items if isinstance(node, YSeq)
                             else [x for pair in node.pairs for x in pair])
    assert answers == {True, False}


def test_event_walk_gives_the_serializer_s_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """dump_yaml feeds libyaml's emitter events built from the data; the representer's node
    tree through libyaml's serializer (the route it replaced) gives the same text for every
    document the YAML targets write for the golden and corpus inputs, and for values the
    targets rarely or never write (anchors in keys and nested anchors, numbers, dates, a
    Verbatim, a set: that one takes the node route whole)."""
    import datetime

    from cicompile import compile_config
    from cicompile.targets import circleci, github, gitlab

    docs: list[tuple[Any, str]] = []

    def capture(data: Any, header: str = "") -> str:
        docs.append((data, header))
        return yamldump.dump_yaml(data, header)

    for module in (github, gitlab, circleci):
        monkeypatch.setattr(module, "dump_yaml", capture)
    for f in _yaml_inputs():
        for target in ("github", "gitlab", "circleci"):
            compile_config(f.read_text(errors="replace"), target, path=str(f))
    assert len(docs) > 300
    lib = yamldump.anchored("lib", "a\nb\n")
    step = yamldump.anchored("step", {"run": lib, "n": "x"})
    once = yamldump.anchored("once", {"k": "v"})
    docs.append(({"a": [step, lib, once], "b": [step, step, {lib: lib}], "c": lib}, "h"))
    # Seen again in the other order, and a lookalike keeps libyaml's names: their numbers show.
    other = yamldump.anchored("other", "c\nd\n")
    docs.append(({"a": [lib, other], "b": [other, lib], "z": "echo *id001"}, ""))
    # Two values under one name, a name libyaml refuses, a name that looks like libyaml's.
    twin, bad, look = (yamldump.anchored(n, f"{n}\nx\n") for n in ("lib", "a b", "id007"))
    docs.append(({"a": [lib, twin, bad, look, other], "b": [other, look, bad, twin, lib]}, ""))
    docs.append(({"a": [lib, twin, look], "b": [look, twin, lib]}, ""))
    docs.append(({"a": [bad, other], "b": [other, bad], "z": "echo *id001"}, ""))
    docs.append(({"n": [None, True, False, 0, -3, 1.5, float("inf"), 10**20, "", "~", "yes",
                        "0x1f", "1e3", "12:30", "é\n", datetime.date(2024, 1, 2),
                        yamldump.Verbatim("3.10", "tag:yaml.org,2002:float"),
                        yamldump.Verbatim("x", "tag:yaml.org,2002:int")],
                  "s": {"set"}}, ""))
    docs.append(({"n": [1, [2, {3: None}]], **{s: [s] for s in _samples(300)}}, ""))
    for data, header in docs:
        assert yamldump._dump(data, header, events=True) == \
            yamldump._dump(data, header, events=False)


# Pieces of strings the emitter must quote, escape or fold: indicators, leading and trailing
# spaces, comment and mapping markers, control, non-printable and non-BMP characters, YAML 1.1
# booleans and numbers, merge keys, long lines, line breaks of every kind.
_YAML_PIECES = ["a", " ", "  ", "\t", "\n", "\r", "\r\n", ":", ": ", " #", "#", "-", "- ", "?",
                "&x", "*x", "!", "|", ">", "'", '"', "\\", "%", "@", "`", "{", "}", "[", "]", ",",
                "\x00", "\x01", "\x1b", "\x7f", "\x85", "\xa0", "\u2028", "\u2029", "\ufeff",
                "\ufffe", "é", "😀", "\U0010fffd", "yes", "on", "~", "null", "1", "0x1f", "1e3",
                ".inf", "<<", "=", "x" * 120, "y " * 70, "---", "...", "${{", "2020-01-01"]
_YAML_WHOLE = ["", " ", "\n", " \n", "\n\n", "a\n\n\n", "\na", "a \nb", "a\t\nb", "a\nb ",
               "No", "ON", "off", "y", "Null", "-1", "+1", "1.5", "0o17", "0b101", "1_000",
               "12:30", ".NaN", "<<", "=", "-", "?", ":", "- a", "a: b", "a #b", "[]", "{}",
               "x" * 300]


def test_event_walk_on_random_strings() -> None:
    """dump_yaml (the event walk) against the representer's route on documents of random
    strings as keys, values and list items (fixed seed): the same text, which reads back as
    the data."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    rnd = random.Random(11)

    def text() -> str:
        if rnd.random() < 0.2:
            return rnd.choice(_YAML_WHOLE)
        return "".join(rnd.choice(_YAML_PIECES) for _ in range(rnd.randint(0, 12)))

    for _ in range(2_000):
        s = [text() for _ in range(8)]
        data = {s[0]: s[1], "list": s[2:5], s[5]: {s[6]: s[7]}, "k": {x: [x] for x in s}}
        written = yamldump.dump_yaml(data)
        assert written == yamldump._dump(data, "", events=False), s
        assert yaml.load(written, Loader=loader) == data, s


def test_without_libyaml_the_representer_s_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML installed without libyaml: its Python emitter cannot take the walk's events
    (UTF-8 bytes), so dump_yaml gives it the representer's node tree, and the text is the
    one libyaml writes."""
    import importlib.util

    monkeypatch.delattr(yaml, "CSafeDumper")
    spec = importlib.util.spec_from_file_location("yamldump_without_libyaml", yamldump.__file__)
    assert spec is not None and spec.loader is not None
    plain = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plain)
    assert plain._Base is yaml.SafeDumper

    def document(module: Any) -> dict[str, Any]:
        lib = module.anchored("lib", "a\nb\n")
        return {"on": {"push": None}, "jobs": {"a": {"steps": [lib, {"run": "x\ny\n"}], "n": 3},
                                               "b": {"steps": [lib], "yes": True, "e": ""}}}

    text = plain.dump_yaml(document(plain), "header")
    assert text == yamldump.dump_yaml(document(yamldump), "header")
    assert "&lib" in text and "*lib" in text


def test_passes_memos_give_what_the_plain_passes_give() -> None:
    """The passes key their memos by object identity, skip unchanged nodes and share layer
    tuples; recomputed node by node without any of that (the code they replaced), every
    node of every golden and corpus input has the same `exists`, `needs` and `layers`."""
    import dataclasses

    from cicompile import ir
    from cicompile.conditions import implies
    from cicompile.passes.graph import ancestor_masks
    from cicompile.passes.workspace_layers import persist_count

    pipelines = [p for p in _pipelines() if p is not None]
    assert len(pipelines) > 80
    checked = reduced = 0
    for p in pipelines:
        jobs = {j.name: j for j in p.jobs}
        for wf in p.workflows:
            _assert_plain_existence(wf)
            success = tuple(
                dataclasses.replace(n, requires=tuple(
                    d for d in n.requires if n.allowed(d) == ir.SUCCESS_ONLY))
                if n.flexible else n for n in wf.nodes)
            index = {n.name: i for i, n in enumerate(success)}
            masks_for: dict[Any, Any] = {}
            for n in wf.nodes:
                needs = []
                for d in n.requires:
                    if n.allowed(d) != ir.SUCCESS_ONLY:
                        needs.append(d)
                        continue
                    c = success[index[d]].exists
                    if c not in masks_for:
                        member = [implies(c, m.exists) for m in success]
                        masks_for[c] = (ancestor_masks(success, member), member)
                    anc, member = masks_for[c]
                    if not any(c != d and n.allowed(c) == ir.SUCCESS_ONLY and member[index[c]]
                               and anc[index[c]] & 1 << index[d] for c in n.requires):
                        needs.append(d)
                assert n.needs == tuple(needs), n.name
                reduced += len(needs) < len(n.requires)
            masks = ancestor_masks(wf.nodes)
            for pos, n in enumerate(wf.nodes):
                layers = [ir.WorkspaceLayer(node=m.name, index=k)
                          for i, m in enumerate(wf.nodes) if m.job and masks[pos] >> i & 1
                          for k in range(persist_count(jobs[m.job]))]
                assert n.layers == tuple(layers), n.name
                checked += 1
    assert checked > 1_000 and reduced > 10, (checked, reduced)


# Documents without aliases that reach the tree builder's corners: merges, duplicates, tags
# that are refused, keys that are collections, the depth bound on both sides of 500.
_TREE_DOCS = [
    "a: {<<: {x: 1, y: 2}, y: 3}\nb: {<<: [{p: 1}, {p: 2, q: 3}], r: !!str 4}\n",
    "a: {<<: 1}\nb: {<<: [x]}\n",
    "a: 1\na: 2\nb: {k: x, k: y}\n",
    "a: !!set {x}\n",
    "a: !foo x\n",
    "? [k]\n: v\n",
    "? {k: v}\n: v\n",
    "a: =\nb: <<\nc: [1, 1.5, .inf, ~, '', yes, 2020-01-01, 0x1f]\n1: one\n~: null\n",
    "x\n",
    "a: " + "[" * 499 + "x" + "]" * 499 + "\n",
    "a: " + "[" * 500 + "x" + "]" * 500 + "\n",
    "a: " + "[" * 501 + "]" * 501 + "\n",
    "a: " + "[" * 500 + "]" * 500 + "\n",
    "".join(f"{' ' * i}k{i}:\n" for i in range(502)) + " " * 502 + "v\n",
    *("b: " + "{a: " * n + "{<<: " + merged + "}" + "}" * n + "\n"
      for n in (497, 498, 499) for merged in ("[{x: 1}]", "[{}]", "[]")),
    "<<: [{}, {}]\n", "<<: [{}, {}, {}]\n", "<<: {}\nk: v\n", "<<: {}\nk: [v]\n",
    "b: " + "{a: " * 499 + "{<<: {x: 1}}" + "}" * 499 + "\n",
    "b: " + "{a: " * 500 + "{<<: {x: 1}}" + "}" * 500 + "\n",
    "s: *.py\nt: a*b\nu: 2>&1\n",
]


# Aliases in merges, merge lists shared with ordinary values (in both orders), a cycle
# through a merge, duplicates and bad tags under aliases, shared nodes near depth 500.
_SHARED_DOCS = [
    "d: &d {a: 1, b: 2}\nx: {<<: *d, b: 3}\ny: {<<: [*d, {c: 4}]}\n",
    "a: &a {p: 1}\nb: &b {q: 2}\nl: &l [*a, *b]\nm: {<<: *l}\nn: *l\n",
    "a: &a {p: 1}\nm: {<<: &l [*a]}\nn: *l\no: [*l, *l]\n",
    "m: &m {<<: [*m]}\n",
    "m: &m {x: {<<: *m}}\n",
    "a: &a [1, 2]\nm: {<<: *a}\n",
    "a: &a x\nm: {<<: *a}\n",
    "a: &a {k: 1, k: 2}\nb: *a\n",
    "a: &a !!set {x}\nb: *a\n",
    "a: &a !foo x\nb: [*a]\n",
    "s: &s {k: v}\nd: " + "[" * 498 + "*s" + "]" * 498 + "\n",
    "s: &s {k: v}\nd: " + "[" * 499 + "*s" + "]" * 499 + "\n",
    "d: " + "[" * 498 + "&s {k: v}" + "]" * 498 + "\ne: *s\n",
    "d: " + "[" * 499 + "&s {k: v}" + "]" * 499 + "\ne: *s\n",
    "a: &a [x, y]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: {<<: [], k: *c}\n",
    "k: &k <<\nd: &d {a: 1}\nm: {*k : *d}\n",
    "a: &a 1\nb: &b '1'\nc: [*a, *b, *a]\nd: {*b : x}\n",
]


def _tree_shape(node: Any, first: dict[int, int]) -> Any:
    """A loaded tree as comparable values: values, text, quoting, positions, key index, and
    which nodes are one object."""
    from cicompile.frontend import yaml_loader as yl

    if id(node) in first:  # an object met before: its number (and no walk again)
        return ("same", first[id(node)])
    first[id(node)] = len(first)
    if isinstance(node, yl.YScalar):
        return (node.text, node.value, type(node.value), node.quoted, node.span)
    if isinstance(node, yl.YSeq):
        return (node.span, [_tree_shape(i, first) for i in node.items])
    assert isinstance(node, yl.YMap)
    return (node.span, dict(node._index),
            [(_tree_shape(k, first), _tree_shape(v, first)) for k, v in node.pairs])


def _loaded_shape(text: str) -> tuple[Any, list[Any]]:
    """`load_yaml(text)` as `_tree_shape` gives it (None when it fails), and the diagnostics."""
    from cicompile.diagnostics import ConfigError, Diagnostics
    from cicompile.frontend import yaml_loader as yl

    d = Diagnostics()
    try:
        return _tree_shape(yl.load_yaml(text, "c.yml", d), {}), d.sorted()
    except ConfigError:
        return None, d.sorted()


@pytest.mark.parametrize("limit", [5, 40, 1_000, 250_000])
def test_tree_builders_give_what_the_general_path_gives(limit: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """load_yaml builds a text in one walk that also checks the alias bound (_TreeBuilder
    without aliases, _SharedBuilder with); forced through the bound walk and the memoising
    builder, or every text through _SharedBuilder, every golden and corpus input and the
    corner cases give the same tree (values, text, quoting, positions, key index, which
    nodes are one object) and the same diagnostics, at the real limit and at small ones."""
    from cicompile.frontend import yaml_loader as yl

    load = _loaded_shape
    monkeypatch.setattr(yl, "MAX_EXPANDED_NODES", limit)
    limit_before = sys.getrecursionlimit()
    taken = {"tree": 0, "shared": 0}

    def counting(cls: Any, name: str) -> None:
        build = cls.build

        def counted(self: Any, node: Any, depth: int) -> Any:
            taken[name] += depth == 0
            return build(self, node, depth)

        monkeypatch.setattr(cls, "build", counted)

    counting(yl._TreeBuilder, "tree")
    counting(yl._SharedBuilder, "shared")
    texts = [f.read_text(errors="replace") for f in _yaml_inputs()] + _ALIAS_DOCS + \
        _SHARED_DOCS + _TREE_DOCS
    # The general builder (and `shape`) take two frames per level: room for the 500 levels
    # the bound allows.
    sys.setrecursionlimit(5_000)
    try:
        fast = [load(t) for t in texts]
        assert taken["tree"] > 50 and taken["shared"] > 30, taken
        # Every text may have aliases: _SharedBuilder for all.
        monkeypatch.setattr(yl, "_ALIAS_START", re.compile(""))
        monkeypatch.setattr(yl, "_ANCHOR_START", re.compile(""))
        shared = [load(t) for t in texts]

        def unbounded(self: Any, node: Any, depth: int) -> Any:
            raise yl._Unbounded

        monkeypatch.setattr(yl._SharedBuilder, "build", unbounded)
        general = [load(t) for t in texts]
        for text, a, b, c in zip(texts, fast, shared, general, strict=True):
            assert a == c, text[:200]
            assert b == c, text[:200]
    finally:
        sys.setrecursionlimit(limit_before)
    assert sum(tree is None for tree, _ in fast) > 5


# Scalars and keys of the random documents below: typed, quoted and tagged (standard tags on
# the wrong kind of node, an application tag), `<<` as a merge key or as a string.
_DOC_SCALARS = ["a", "b", "1", "~", "yes", "'q'", '"d"', "!!str 5", "!!int 7", "<<", "1.5",
                "2020-01-01", "''", "!!null ''", "!!float 1", "!!merge x", "!!map x", "!foo x"]
_DOC_KEYS = ["a", "b", "c", "1", "~", "'a'", "null", "yes", "<<", "'<<'", "!!str <<",
             "!!merge <<", "!!int 1", "? [x]", "!foo k"]


def _random_document(rnd: random.Random) -> str:
    """A flow-style document with anchors (some defined again), aliases as values and keys
    (some in their own anchored node), merges of one alias or a list of them (maps or not),
    nested and duplicate keys."""
    anchors: list[str] = []

    def node(depth: int) -> str:
        r = rnd.random()
        if anchors and r < 0.2:
            return "*" + rnd.choice(anchors)
        anchor = f"&a{rnd.randint(0, 5)} " if rnd.random() < 0.25 else ""
        early = anchor and rnd.random() < 0.1  # aliases inside its own node: a cycle
        if early:
            anchors.append(anchor[1:-1])
        if depth > 3 or r < 0.45:
            text = anchor + rnd.choice(_DOC_SCALARS)
        elif r < 0.7:
            text = anchor + "[" + ", ".join(node(depth + 1) for _ in range(rnd.randint(0, 3))) + "]"
        else:
            pairs = []
            for _ in range(rnd.randint(0, 4)):
                if anchors and rnd.random() < 0.3:
                    merged = [rnd.choice(anchors) for _ in range(rnd.randint(0, 3))]
                    pairs.append("<<: " + ("[" + ", ".join(f"*{a}" for a in merged) + "]"
                                           if rnd.random() < 0.5 else f"*{rnd.choice(anchors)}"))
                elif anchors and rnd.random() < 0.1:
                    pairs.append(f"*{rnd.choice(anchors)} : {node(depth + 1)}")
                else:
                    pairs.append(f"{rnd.choice(_DOC_KEYS)}: {node(depth + 1)}")
            text = anchor + "{" + ", ".join(pairs) + "}"
        if anchor and not early:
            anchors.append(anchor[1:-1])
        return text

    lines = [f"t{i}: {node(0)}" for i in range(rnd.randint(1, 5))]
    if anchors and rnd.random() < 0.3:
        lines.append(f"m:\n  <<: *{rnd.choice(anchors)}\n  z: 1")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("limit", [20, 250_000])
def test_tree_builders_on_random_documents(limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both one-walk builders against the general path (the bound walk, then the memoising
    builder) on random documents (fixed seed) mixing what each builder hands to the general
    path: the same trees and the same diagnostics (duplicate keys, bad merges, tags, keys
    that are collections, the alias bound)."""
    from cicompile.frontend import yaml_loader as yl

    rnd = random.Random(limit)
    texts = []
    while len(texts) < 1_000:
        text = _random_document(rnd)
        try:
            yl._compose(text)
        except yaml.YAMLError:
            continue
        texts.append(text)
    monkeypatch.setattr(yl, "MAX_EXPANDED_NODES", limit)
    fast = [_loaded_shape(t) for t in texts]
    with monkeypatch.context() as m:  # every text through _SharedBuilder
        m.setattr(yl, "_ALIAS_START", re.compile(""))
        m.setattr(yl, "_ANCHOR_START", re.compile(""))
        shared = [_loaded_shape(t) for t in texts]

    def unbounded(self: Any, node: Any, depth: int) -> Any:
        raise yl._Unbounded

    monkeypatch.setattr(yl._TreeBuilder, "build", unbounded)
    monkeypatch.setattr(yl._SharedBuilder, "build", unbounded)
    codes = set()
    for text, a, b, (tree, diags) in zip(texts, fast, shared, [_loaded_shape(t) for t in texts],
                                         strict=True):
        assert a == (tree, diags), text
        assert b == (tree, diags), text
        codes.update(d.code for d in diags)
    assert {"duplicate-key", "yaml-merge", "yaml-key", "yaml-tag",
            "alias-expansion-limit"} <= codes


def test_shim_detection_tries_the_patterns_only_at_the_word() -> None:
    """`_calls` answers what `pattern.search` answers: on every run command of the golden and
    corpus inputs, and on texts built around the words and the lookbehind's characters."""
    from cicompile import ir
    from cicompile.targets import shim

    texts = [s.command for p in _pipelines() if isinstance(p, ir.Pipeline) for job in p.jobs
             for s in job.steps if isinstance(s, ir.Run)]
    assert len(texts) > 1_000
    rnd = random.Random(5)
    pieces = ["circleci", "circleci-agent", " tests", "\ttests", "-agent", "x", "/", ".", "-",
              " ", "\n", "step halt", "testsx", "é"]
    texts += ["".join(rnd.choices(pieces, k=rnd.randint(0, 8))) for _ in range(20_000)]
    hits = set()
    for text in texts:
        for pattern, word in ((shim._USES_CLI, "circleci"), (shim._USES_AGENT, "circleci-agent")):
            found = shim._calls(pattern, word, text)
            assert found == bool(pattern.search(text)), (pattern, text)
            hits.add(found)
    assert hits == {True, False}


def test_job_scripts_without_their_fast_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """make and shell write the same files and diagnostics, for every golden and corpus input,
    with jinja's own attribute lookup (not the builtin) and every step view built afresh (not
    memoised)."""
    from cicompile import compile_config
    from cicompile.targets import jobscript
    from jinja2 import Environment

    inputs = [f.read_text(errors="replace") for f in _yaml_inputs()]
    fast = [[compile_config(text, t) for t in ("make", "shell")] for text in inputs]
    monkeypatch.setattr(jobscript.ENV, "getattr",
                        Environment.getattr.__get__(jobscript.ENV))
    monkeypatch.setattr(jobscript._Builder, "view", jobscript._Builder.step)
    plain = [[compile_config(text, t) for t in ("make", "shell")] for text in inputs]
    assert sum(bool(r.files) for rs in fast for r in rs) > 150
    for a, b in zip(fast, plain, strict=True):
        for x, y in zip(a, b, strict=True):
            assert (x.files, x.diagnostics) == (y.files, y.diagnostics)


# Keys and values substituted in maps of jobs, commands and their arguments.
_TEMPLATED_KEYS = """version: 2.1
commands:
  greet:
    parameters:
      key: {type: string, default: K}
      who: {type: string}
    steps:
      - run:
          name: << parameters.who >>
          environment:
            << parameters.key >>_NAME: << parameters.who >>
            PLAIN: x
          command: echo "<< parameters.who >> << pipeline.git.branch >>"
jobs:
  j:
    parameters:
      k: {type: string, default: A}
    docker: [{image: cimg/base:stable}]
    environment:
      << parameters.k >>: "1"
      B: "<< parameters.k >>"
    steps:
      - greet: {who: me, key: << parameters.k >>}
      - greet: {who: you}
workflows:
  w:
    jobs:
      - j
      - j: {name: j2, k: Z}
"""


def test_expander_fast_paths_give_what_the_plain_code_gives(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The expander keeps template-free scalar children without a call, shares a map's key
    index when only its values change, tests keys to drop against the index, and plans each
    text's rendering once; with the plain code instead (every child substituted, every index
    rebuilt, every text's expressions evaluated and tokens scanned), every 2.1 golden and
    corpus input expands to the same tree (key indexes included) and diagnostics."""
    import operator

    from cicompile.diagnostics import ConfigError, Diagnostics
    from cicompile.frontend import expand
    from cicompile.frontend.yaml_loader import YMap, YScalar, YSeq, load_yaml

    def shape(node: Any) -> Any:
        if isinstance(node, YScalar):
            return (node.text, node.value, type(node.value), node.quoted, node.span)
        if isinstance(node, YSeq):
            return ("seq", node.span, [shape(i) for i in node.items])
        assert isinstance(node, YMap)
        return ("map", node.span, dict(node._index), [(shape(k), shape(v)) for k, v in node.pairs])

    def plain_subst(self: Any, node: Any, scope: Any) -> Any:
        if isinstance(node, YScalar):
            return self.subst_scalar(node, scope)
        if not self.templated(node):
            return node
        if isinstance(node, YSeq):
            items = [self.subst(i, scope) for i in node.items]
            if all(map(operator.is_, items, node.items)):
                return node
            return YSeq(tuple(items), node.span)
        changed = False
        pairs = []
        for k, v in node.pairs:
            k2, v2 = self.subst_key(k, scope), self.subst(v, scope)
            changed = changed or k2 is not k or v2 is not v
            pairs.append((k2, v2))
        return YMap(tuple(pairs), node.span) if changed else node

    def plain_without(m: Any, keys: Any) -> Any:
        drop = set(keys)
        if not any(k.as_str() in drop for k, _ in m.pairs):
            return m
        return YMap(tuple((k, v) for k, v in m.pairs if k.as_str() not in drop), m.span)

    def expanded(text: str) -> Any:
        d = Diagnostics()
        root = load_yaml(text, "c.yml", d)
        assert isinstance(root, YMap)
        try:
            return shape(expand.expand_config(root, d, source=text)), d.sorted()
        except ConfigError:
            return None, d.sorted()

    inputs = [f.read_text() for f in _v21_inputs()] + [_TEMPLATED_KEYS]
    fast = [expanded(text) for text in inputs]
    monkeypatch.setattr(expand._Expander, "subst", plain_subst)
    monkeypatch.setattr(expand, "_without", plain_without)
    monkeypatch.setattr(expand, "_render_plan", lambda text: (True, [], False))
    plain = [expanded(text) for text in inputs]
    assert len(inputs) > 50 and sum(tree is not None for tree, _ in fast) > 50
    for text, a, b in zip(inputs, fast, plain, strict=True):
        assert a == b, text[:300]


def test_nodes_rendered_together_as_one_by_one() -> None:
    """One render of all nodes gives each node the text of its own render, for every golden
    and corpus input (nothing of a node leaks into the next)."""
    from cicompile import ir
    from cicompile.diagnostics import Diagnostics
    from cicompile.targets import jobscript
    from cicompile.targets.base import EmitContext

    checked = 0
    for pipeline in _pipelines():
        if not isinstance(pipeline, ir.Pipeline):
            continue
        nodes = jobscript.build_model(pipeline, EmitContext(Diagnostics())).nodes
        assert jobscript.render_nodes(nodes) == [jobscript.render_nodes((n,))[0] for n in nodes]
        checked += len(nodes)
    assert checked > 1_000


@pytest.mark.parametrize("marker", ["\\0cicompile-node-end\\0", "\\0cicompile-runtime\\0"])
def test_marker_text_from_the_config_splits_nothing(marker: str) -> None:
    """A filter pattern and a cache key reach a node's text as `shlex.quote` writes them, NUL
    included: the text of the markers that split the one render of all nodes and that hold
    the runtime's place is then the config's, and still each node gets its own text and the
    runtime is written once."""
    from cicompile import compile_config, front_end, ir
    from cicompile.diagnostics import Diagnostics
    from cicompile.targets import jobscript
    from cicompile.targets.base import EmitContext

    text = f"""version: 2
jobs:
  build:
    docker: [{{image: cimg/base:stable}}]
    steps:
      - save_cache: {{key: "k-{marker}-x", paths: [a]}}
      - run: echo build
  test:
    docker: [{{image: cimg/base:stable}}]
    steps: [{{run: echo test}}]
workflows:
  version: 2
  main:
    jobs:
      - build: {{filters: {{branches: {{only: "x{marker}y"}}}}}}
      - test: {{requires: [build]}}
"""
    pipeline = front_end(text).pipeline
    assert isinstance(pipeline, ir.Pipeline)
    nodes = jobscript.build_model(pipeline, EmitContext(Diagnostics())).nodes
    assert jobscript.render_nodes(nodes) == [jobscript.render_nodes((n,))[0] for n in nodes]
    for target, name in (("shell", "ci.sh"), ("make", "Makefile")):
        result = compile_config(text, target)
        out = result.files[name]
        assert out.count("cc_run() {") == 1, target
        assert "echo build" in out and "echo test" in out


def test_runtime_check_on_the_whole_runtime_misses_no_kept_line() -> None:
    """The Makefile checks the runtime before `drop_unused_functions` (its functions memoised):
    a line that could break a `define` in what is kept is always in the whole runtime. Lines
    that would break it are put at random places of real runtimes, inside functions that are
    kept or dropped, in comments, in the node index."""
    from cicompile import ir
    from cicompile.diagnostics import Diagnostics
    from cicompile.targets import jobscript
    from cicompile.targets.base import EmitContext

    rnd = random.Random(11)
    hazards = ["define x", "  endef", "\tdefine", "a \\", "b \\\r", "endef # c"]
    runtimes = []
    for pipeline in _pipelines()[:40]:
        if isinstance(pipeline, ir.Pipeline):
            model = jobscript.build_model(pipeline, EmitContext(Diagnostics()))
            runtimes.append(jobscript.render_runtime(model) + '\n\ncc_make_main "$@"')
    caught = 0
    for runtime in runtimes:
        lines = runtime.split("\n")
        for _ in range(30):
            changed = list(lines)
            changed.insert(rnd.randrange(len(lines) + 1), rnd.choice(hazards))
            full = "\n".join(changed)
            kept = jobscript.drop_unused_functions(full, "cc_job_x cc_run cc_begin")
            if jobscript.make_hazard(kept):
                assert not make._runtime_clean(full)
                caught += 1
        assert make._runtime_clean(runtime)
    assert caught > 100


def test_step_index_is_tuple_index() -> None:
    """`step_index` gives `tuple.index` for every step of every job of the golden and corpus
    inputs, and for equal steps at several places (the first one's place)."""
    from cicompile import ir
    from cicompile.targets.base import step_index

    run, other = ir.Run(name="a", command="x"), ir.Run(name="a", command="y")
    jobs = [(ir.Checkout(), run, other, ir.Run(name="a", command="x"), ir.Checkout())]
    for pipeline in _pipelines():
        if isinstance(pipeline, ir.Pipeline):
            jobs += [job.steps for job in pipeline.jobs]
    checked = 0
    for steps in jobs:
        for step in steps:
            assert step_index(steps, step) == steps.index(step)
            checked += 1
    assert step_index(jobs[0], jobs[0][3]) == 1 and checked > 5_000


def test_memoised_placements_are_each_job_s_own() -> None:
    """Placements are memoised by executor value: for every job of the golden and corpus
    inputs, on both YAML targets, the memo (filled by the jobs before it, whose executors may
    be equal but not the same objects) answers what `place` computes for the job itself."""
    from cicompile import ir
    from cicompile.targets import runners

    checked = 0
    for pipeline in _pipelines():
        if not isinstance(pipeline, ir.Pipeline):
            continue
        for job in pipeline.jobs:
            shells = tuple(s for s in (job.shell, *(st.shell for st in job.steps
                                                    if isinstance(st, ir.Run))) if s)
            for target in ("github", "gitlab"):
                assert runners._placed(job.executor, target, None, shells) == \
                    runners.place(job.executor, target, None, shells)
                checked += 1
    assert checked > 1_000 and runners._placed.cache_info().hits > 500


def _ir_dump(x: Any) -> Any:
    """IR as plain data, spans included (IR equality and repr leave them out)."""
    import dataclasses

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return (type(x).__name__,
                tuple((f.name, _ir_dump(getattr(x, f.name))) for f in dataclasses.fields(x)))
    if isinstance(x, tuple | list):
        return tuple(_ir_dump(i) for i in x)
    return x


def test_reader_shortcuts_give_what_the_plain_reader_gives(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader skips the unknown-key walk when a map's keys are all allowed and reads a
    `run` step of only `command` and `name` without looking up every option; with both
    shortcuts off (`has_only` never true), every golden and corpus input gives the same IR,
    spans included, and the same diagnostics."""
    from cicompile.diagnostics import ConfigError, Diagnostics
    from cicompile.frontend import circleci
    from cicompile.frontend.yaml_loader import YMap

    def read(text: str) -> Any:
        d = Diagnostics()
        try:
            return _ir_dump(circleci.parse_config(text, "c.yml", d)), d.sorted()
        except ConfigError:
            return None, d.sorted()

    texts = [f.read_text(errors="replace") for f in _yaml_inputs()] + [
        "version: 2\njobs:\n  build:\n    docker: [{image: x}]\n    steps:\n"
        "      - run: {name: a}\n      - run: {command: b, bogus: 1}\n"
        "      - run: {command: c, name: ~}\n      - run: {command: ~}\n      - run: {}\n"]
    def plain_unknown_keys(self: Any, m: YMap, allowed: Any, what: str) -> None:
        for k, _ in m.pairs:
            if k.as_str() not in allowed:
                self.diags.warning("unknown-key", f"unknown key {k.as_str()!r} in {what};"
                                   " ignored", k.span)

    fast = [read(t) for t in texts]
    monkeypatch.setattr(YMap, "has_only", lambda self, keys: False)
    monkeypatch.setattr(circleci._Reader, "unknown_keys", plain_unknown_keys)
    plain = [read(t) for t in texts]
    assert sum(ir is not None for ir, _ in fast) > 80
    assert any(d.code == "unknown-key" for _, diags in fast for d in diags)
    for text, a, b in zip(texts, fast, plain, strict=True):
        assert a == b, text[:200]


def test_default_step_name_takes_the_first_line_splitlines_gives() -> None:
    """A `run` step's default name is its command's first line, found with a regex of the
    line boundaries `str.splitlines` knows instead of splitting the whole command."""
    from cicompile.frontend.circleci import _default_step_name

    def plain(cmd: str) -> str:  # the code the regex replaced
        first = cmd.strip().splitlines()[0] if cmd.strip() else "run"
        return first if len(first) <= 80 else first[:77] + "..."

    rnd = random.Random(5)
    alphabet = ["a", " ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e",
                "\x1f", "\x85", "\u2028", "\u2029", "\xa0", "é", "x" * 50]
    for _ in range(20_000):
        cmd = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 8)))
        assert _default_step_name(cmd) == plain(cmd), repr(cmd)
