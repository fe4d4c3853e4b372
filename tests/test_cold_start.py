"""Guards for the CLI's cold start (docs/performance.md): what a small 2.0 config loads.

No timing here (timings belong to benchmarks/bench.py): these check the causes instead, so a
change that would slow every start fails with a reason.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Modules the GitHub target of a small 2.0 config must not load: each is imported where it is
# needed (2.1 expansion and orbs, cache-key templates, make/shell templates, file writing).
NOT_ON_THE_COLD_PATH = (
    "cicompile.frontend.expand",
    "cicompile.frontend.orbsource",
    "cicompile.targets.report",
    "jinja2",
    "lark",
    "tempfile",
    "difflib",
    "importlib.resources",
)


def test_a_small_config_loads_only_what_it_needs() -> None:
    script = (
        "import contextlib, io, sys\n"
        "from cicompile.cli import main\n"
        f"sys.argv = ['cicompile', '--target', 'github', {str(ROOT / 'golden' / 'seed-sequential' / 'input.yml')!r}]\n"  # noqa: E501
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main()\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()
    assert "cicompile.targets.github" in out  # it did compile
    loaded = [m for m in NOT_ON_THE_COLD_PATH if m in out]
    assert not loaded, f"loaded on the cold path: {loaded}"


def test_dataclasses_come_from_records() -> None:
    # The standard decorator compiles each generated method at import (~0.5 ms per class);
    # cicompile.records.dataclass has the same semantics without that cost.
    pattern = re.compile(r"from dataclasses import [^\n]*\bdataclass\b|dataclasses\.dataclass\b")
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("compiler", "targets")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "records.py" and pattern.search(path.read_text())
    ]
    assert not offenders, f"use `from cicompile.records import dataclass` in {offenders}"
