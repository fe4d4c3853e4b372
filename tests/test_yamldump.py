"""The YAML dumper gives the same bytes with libyaml's emitter and PyYAML's Python one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cicompile import compile_config
from cicompile.targets import yamldump

from tests.golden_cases import case_dirs


def _python_dump(data: Any) -> str:
    class Py(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    Py.add_representer(str, yamldump._str_representer)
    return yaml.dump(data, Dumper=Py, sort_keys=False, default_flow_style=False, width=100,
                     allow_unicode=True, indent=2)


CASES = [c for c in case_dirs() if not (c / "exit_code").exists()]


@pytest.mark.skipif(not hasattr(yaml, "CSafeDumper"), reason="libyaml not available")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("target", ["github", "gitlab"])
def test_same_output_without_libyaml(case: Path, target: str) -> None:
    result = compile_config((case / "input.yml").read_text(), target)
    for text in result.files.values():
        body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        data = yaml.safe_load(text)
        if target == "github":
            data = {("on" if k is True else k): v for k, v in data.items()}
        again = yamldump.dump_yaml(data)
        assert again == _python_dump(data)
        assert body.strip()


def test_tricky_strings_round_trip() -> None:
    data = {"a": "line one\nline two  \n\tindented tab\n", "b": "yes", "c": "on", "d": "2.1",
            "e": "x: y", "f": "# not a comment", "g": "${{ '${{' }}", "h": "é ü ✓",
            "i": "trailing\n\n", "j": " leading space\nsecond"}
    out = yamldump.dump_yaml(data)
    back = yaml.safe_load(out)
    assert back == data
    assert out == _python_dump(data)
