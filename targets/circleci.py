"""`--target circleci`: the expanded, 2.0-equivalent config, like `circleci config process`.

Users compare it with CircleCI's own processing, and can read what cicompile understood.

It is printed from the expanded YAML tree (what `frontend/expand.py` hands to the reader),
not from the IR: the IR keeps only what the other targets translate and drops the rest
(`resource_class`, `docker` auth, `no_output_timeout`, `when` of steps as written, unknown
keys, `setup`...), while a processed config must still say everything the original said.
Emitting the tree also keeps this target independent of IR changes, and it is idempotent:
the output is a 2.0 config, so compiling it again changes nothing.

Registry orbs whose source was not available stay under `orbs:` (CircleCI would inline
them); their jobs and commands stay as written, so compiling the processed config gives the
same placeholders as compiling the original.
"""

from __future__ import annotations

from typing import Any

from cicompile import ir
from cicompile.frontend.yaml_loader import YMap, YNode, YScalar, YSeq
from cicompile.targets.base import EmitContext, Target
from cicompile.targets.yamldump import Verbatim, dump_yaml

OUTPUT = ".circleci/config.processed.yml"
# No source path in the header: processing the processed file again gives the same bytes.
HEADER = ("Processed by cicompile (CircleCI 2.1 expanded to 2.0, like `circleci config"
          " process`).\nDo not edit by hand.")
_TAGS = {int: "tag:yaml.org,2002:int", float: "tag:yaml.org,2002:float"}


def _scalar(node: YScalar) -> Any:
    v = node.value
    if isinstance(v, bool) or v is None:
        return v
    if type(v) in _TAGS:
        # Numbers keep their text: `python: 3.10` is not `3.1`, `0x1F` stays hex.
        return Verbatim(node.text, _TAGS[type(v)])
    return node.as_str()


def to_data(node: YNode) -> Any:
    """Plain Python data for the dumper: mappings keep their order, scalars their text."""
    if isinstance(node, YScalar):
        return _scalar(node)
    if isinstance(node, YSeq):
        return [to_data(i) for i in node.items]
    return {k.as_str(): to_data(v) for k, v in node.pairs}


def processed(root: YMap) -> dict[str, Any]:
    """The expanded tree as a 2.0 config: `version: 2` first, workflows versioned too."""
    out: dict[str, Any] = {"version": 2}
    for k, v in root.pairs:
        key = k.as_str()
        if key == "version":
            continue
        value = to_data(v)
        if key == "workflows" and isinstance(value, dict):
            # CircleCI 2.0 expects `version: 2` there (cicompile warns otherwise).
            value = {"version": 2, **{n: w for n, w in value.items() if n != "version"}}
        out[key] = value
    return out


class CircleCITarget(Target):
    name = "circleci"

    def emit(self, pipeline: ir.Pipeline, ctx: EmitContext) -> dict[str, str]:
        assert isinstance(ctx.expanded, YMap), "compile_config keeps the tree for this target"
        return {OUTPUT: dump_yaml(processed(ctx.expanded), header=HEADER)}
