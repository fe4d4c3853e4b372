"""Every diagnostic code used in the source is documented in docs/diagnostics.md."""

from __future__ import annotations

import re

from tests.tools import ROOT

CALL = re.compile(r"\.(?:error|warning|note|unsupported)\(\s*[\"']([a-z0-9-]+)[\"']", re.S)


def test_every_code_is_documented() -> None:
    doc = (ROOT / "docs" / "diagnostics.md").read_text()
    documented = set(re.findall(r"^###\s+(.+)$", doc, re.M))
    names = {n.strip() for line in documented for n in line.split("/")}
    used: set[str] = set()
    for folder in ("compiler", "targets"):
        for f in (ROOT / folder).rglob("*.py"):
            used |= set(CALL.findall(f.read_text()))
    assert used, "no diagnostic calls found: the pattern is stale"
    missing = sorted(used - names)
    assert not missing, f"undocumented diagnostic codes: {missing}"
