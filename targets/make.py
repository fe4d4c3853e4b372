"""Make target: a `Makefile` that runs the whole pipeline on the host (semantics §9.3).

Design. Make schedules, bash does the work:

- Each workflow node is a phony target `job.<workflow>.<node>` (sanitised ids) whose
  prerequisites are `cicompile-init` (resets the run directory, records the branch or tag)
  and the targets of the nodes it needs, so `make -j` runs independent jobs concurrently.
  `workflow.<workflow>` and `all` (the default goal) depend on node targets and print the
  summary; a node target itself always succeeds and records the node's status in the run
  directory, so a failing job does not stop independent ones.
- No shell text from the runtime or the config is ever a recipe line. Recipe lines are
  separate shells, and with .ONESHELL make strips leading `@-+` from them, so commands cannot
  be inlined safely. Instead the shared runtime (`jobscript.py`) and each node's script are
  `define` blocks with `$` doubled. CICOMPILE_RUNTIME is exported to every recipe; each node
  target exports its own script as the target-specific CICOMPILE_NODE; every recipe is one
  line: `$(SHELL) -c "$$CICOMPILE_RUNTIME" cicompile <init|node KEY|summary WF...|clean>`.
  Passing scripts through the environment writes nothing at parse time, so `make -n` has no
  side effects, and one environment string stays well under Linux's 128 KiB limit for a
  node script (the runtime is about 20 KiB).
- A `define` body must not contain a line make reads as a directive (`define`/`endef`, even
  indented) nor a line ending in a backslash (make joins it with the next). The node scripts
  never produce one (`jobscript.MAKE_HAZARD`: such commands become a single `$'...'` word);
  `emit` checks every body again and fails loudly rather than write a broken Makefile.
- `make CIRCLE_BRANCH=dev`: command-line variables reach recipes' environment like
  environment variables do, and the runtime reads both the same way.
"""

from __future__ import annotations

from functools import lru_cache

from cicompile import ir
from cicompile.records import dataclass
from cicompile.targets.base import GENERATED_NOTICE, EmitContext, Target
from cicompile.targets.jobscript import (
    ENV,
    RUNTIME_SLOT,
    build_model,
    comment_safe,
    drop_unused_functions,
    functions_end,
    make_escape,
    make_hazard,
    render_nodes,
    render_runtime,
)

ENV_LIMIT = 120 * 1024  # Linux: MAX_ARG_STRLEN, 128 KiB for one environment string


@dataclass(frozen=True, slots=True)
class _MakeNode:
    key: str
    target: str
    number: int  # 1-based, in node order: its place in CICOMPILE_LIVE
    needs: tuple[tuple[int, str], ...]  # (number, target)
    text: str  # the node's bash (unescaped)


@dataclass(frozen=True, slots=True)
class _MakeWorkflow:
    id: str
    nodes: list[_MakeNode]


def _check_define_body(name: str, text: str) -> None:
    m = make_hazard(text)
    if m:
        line = text[: m.start()].count("\n") + 1
        raise AssertionError(f"internal error: line {line} of {name} would break its define")


def _runtime_clean(runtime: str) -> bool:
    """Whether no line of RUNTIME could break its `define`; then neither can a line of what
    `drop_unused_functions` keeps of it (whole lines of it, in order). The functions, the
    long part, are the same text for every config with the same runtime features: their
    check is memoised."""
    cut = functions_end(runtime)
    if cut < 0:
        return make_hazard(runtime) is None
    return _clean(runtime[:cut]) and make_hazard(runtime[cut:]) is None


@lru_cache(maxsize=16)
def _clean(text: str) -> bool:
    return make_hazard(text) is None


class MakeTarget(Target):
    name = "make"

    def emit(self, pipeline: ir.Pipeline, ctx: EmitContext) -> dict[str, str]:
        model = build_model(pipeline, ctx)
        target = {n.key: f"job.{n.wf_id}.{n.node_id}" for n in model.nodes}
        # The runtime's node order (its node index): what `live` answers for.
        number = {n.key: i for i, n in enumerate(model.nodes, 1)}
        nodes = [
            _MakeNode(
                key=n.key,
                target=target[n.key],
                number=number[n.key],
                needs=tuple((number[k], target[k]) for k in n.needs),
                text=text,
            )
            for n, text in zip(model.nodes, render_nodes(model.nodes), strict=True)
        ]
        # The nodes' cc_exists_KEY under other names: a shellcheck of all the Makefile's bash
        # at once would see each defined twice (only the runtime's `live` evaluates these).
        exists = "\n".join(
            "# shellcheck disable=SC2016 # values from the config are literal\n"
            f"cc_live_{n.key}() {{\n  {n.exists}\n}}" for n in model.nodes)
        _check_define_body("the existence conditions", exists)
        by_key = {n.key: n for n in nodes}
        workflows = [
            _MakeWorkflow(wf.id, [by_key[n.key] for n in wf.nodes]) for wf in model.workflows
        ]
        source = comment_safe(model.source)
        text = ENV.get_template("Makefile.j2").render(
            notice=GENERATED_NOTICE.format(source=source),
            source=source,
            runtime=RUNTIME_SLOT,
            exists=exists,
            nodes=nodes,
            workflows=workflows,
            serial_groups=any(n.serial_group for n in model.nodes),
        )
        full = render_runtime(model) + '\n\ncc_make_main "$@"'
        runtime = drop_unused_functions(full, text)
        if not _runtime_clean(full):
            _check_define_body("the runtime", runtime)  # which line, if it is a kept one
        for node in nodes:
            _check_define_body(f"node {node.key}", node.text)
        for what, body in [("the runtime", runtime)] + [(n.target, n.text) for n in nodes]:
            # (the size in UTF-8 without encoding the text when it is ASCII: an O(1) test)
            if (len(body) if body.isascii() else len(body.encode())) > ENV_LIMIT:
                ctx.diags.warning(
                    "unsupported-feature",
                    f"the bash of {what} is {len(body.encode()) // 1024} KiB; the Makefile"
                    " passes it to bash in one environment variable, which Linux limits to"
                    " 128 KiB: use the shell target",
                    None,
                )
        return {"Makefile": text.replace(RUNTIME_SLOT, make_escape(runtime), 1)}
