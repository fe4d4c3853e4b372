"""Shell target: `ci.sh`, one bash script that runs the whole pipeline on the host.

The script is the shared runtime and node scripts (`jobscript.py`) plus `cc_shell_main`,
whose scheduler starts every node whose requirements have finished, in the background, and
collects them with `wait -n`; `bash ci.sh [WORKFLOW...]` picks workflows.
"""

from __future__ import annotations

from cicompile import ir
from cicompile.targets.base import GENERATED_NOTICE, EmitContext, Target
from cicompile.targets.jobscript import (
    ENV,
    RUNTIME_SLOT,
    build_model,
    comment_safe,
    drop_unused_functions,
    render_nodes,
    render_runtime,
)


class ShellTarget(Target):
    name = "shell"

    def emit(self, pipeline: ir.Pipeline, ctx: EmitContext) -> dict[str, str]:
        model = build_model(pipeline, ctx)
        source = comment_safe(model.source)
        text = ENV.get_template("ci.sh.j2").render(
            notice=GENERATED_NOTICE.format(source=source),
            source=source,
            workflows=model.workflows,
            runtime=RUNTIME_SLOT,
            nodes=render_nodes(model.nodes),
            serial_groups=any(n.serial_group for n in model.nodes),
        )
        runtime = drop_unused_functions(render_runtime(model), text)
        return {"ci.sh": text.replace(RUNTIME_SLOT, runtime, 1)}
