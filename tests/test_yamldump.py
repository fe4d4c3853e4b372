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


def test_anchored_values_are_written_once_under_their_names() -> None:
    step = yamldump.anchored("circleci-shim", {"name": "Install", "run": "one\ntwo\n"})
    lib = yamldump.anchored("library", "f() {\n  :\n}\n")
    alone = yamldump.anchored("alone", "used\nonce\n")
    data = {"a": {"steps": [step, {"run": "x"}], "before": [lib, alone]},
            "b": {"steps": [step], "before": [lib]}, "c": {"steps": [step]}}
    out = yamldump.dump_yaml(data)
    assert out.count("&circleci-shim\n") == 1 and out.count("- *circleci-shim\n") == 2
    assert out.count("- &library |\n") == 1 and out.count("- *library\n") == 1
    assert "alone" not in out and out.count("f() {") == 1
    plain = {"name": "Install", "run": "one\ntwo\n"}
    assert yaml.safe_load(out) == {
        "a": {"steps": [plain, {"run": "x"}], "before": ["f() {\n  :\n}\n", "used\nonce\n"]},
        "b": {"steps": [plain], "before": ["f() {\n  :\n}\n"]}, "c": {"steps": [plain]}}


def test_anchor_names_stay_generic_when_the_text_has_lookalikes() -> None:
    # Renaming libyaml's `id001` is textual: a config's own `*id001` must not be touched.
    lib = yamldump.anchored("library", "a\nb\n")
    data = {"x": [lib], "y": [lib, "echo *id001 &id001"]}
    out = yamldump.dump_yaml(data)
    assert "library" not in out and "- &id001 |" in out
    assert yaml.safe_load(out) == {"x": ["a\nb\n"], "y": ["a\nb\n", "echo *id001 &id001"]}


def test_anchored_mappings_are_read_only() -> None:
    step = yamldump.anchored("s", {"name": "n"})
    for change in (lambda: step.update(x=1), lambda: step.__setitem__("if", "c"), step.clear):
        with pytest.raises(TypeError, match="shared and read-only"):
            change()
    assert step == {"name": "n"}
