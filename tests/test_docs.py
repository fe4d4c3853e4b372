"""Every diagnostic code used in the source is documented in docs/diagnostics.md."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import ROOT, git_repo

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


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_CONSOLE = re.compile(r"^```console\n(.*?)^```", re.M | re.S)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_relative_links_and_anchors_exist() -> None:
    for doc in DOCS:
        for target in _LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path, _, anchor = target.partition("#")
            dest = (doc.parent / path).resolve()
            assert dest.exists(), f"{doc.name}: {target}"
            if anchor:
                headings = re.findall(r"^#+\s+(.+)$", dest.read_text(), re.M)
                assert anchor in {_slug(h) for h in headings}, f"{doc.name}: {target}"


def _readme_config() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("```yaml\n# .circleci/config.yml\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("doc", [d for d in DOCS if _CONSOLE.search(d.read_text())],
                         ids=lambda d: d.name)
def test_console_examples_run_as_written(doc: Path, tmp_path: Path) -> None:
    """Every `$ ` line of the doc's console blocks, in order, in a repository whose
    .circleci/config.yml is the README's example (and ~/src/* a few such repositories)."""
    # The config attaches its workspace at /tmp/ws: each test its own, as concurrent runs
    # of the same absolute attach would clean each other's files.
    config = _readme_config().replace("/tmp/ws", str(tmp_path / "ws"))
    repo = tmp_path / "repo"
    (repo / ".circleci").mkdir(parents=True)
    (repo / ".circleci" / "config.yml").write_text(config)
    git_repo(repo)
    home = tmp_path / "home"
    for name in ("api", "web"):
        (home / "src" / name / ".circleci").mkdir(parents=True)
        (home / "src" / name / ".circleci" / "config.yml").write_text(config)
    env = {**os.environ, "HOME": str(home),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    commands = [line[2:] for block in _CONSOLE.findall(doc.read_text())
                for line in block.splitlines() if line.startswith("$ ")]
    assert commands
    for command in commands:
        # A fixed /tmp path in the docs would be shared by concurrent test runs.
        shown = command.replace("/tmp/ci", str(tmp_path / "ci"))
        r = subprocess.run(["bash", "-c", shown], cwd=repo, env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, f"{doc.name}: $ {command}\n{r.stdout[-2000:]}{r.stderr}"
        assert "Traceback" not in r.stderr, command


def test_graph_examples_are_the_real_output() -> None:
    doc = (ROOT / "docs" / "graph.md").read_text()
    blocks = re.findall(r"^```mermaid\n(.*?)^```", doc, re.M | re.S)
    sources = re.findall(r"`(golden/[\w-]+/input\.yml)`", doc)
    assert len(blocks) == 2 and sources[:2] == ["golden/seed-approval/input.yml",
                                                "golden/release-pipeline/input.yml"]
    for block, src in zip(blocks, ["seed-approval", "release-pipeline"], strict=True):
        r = subprocess.run([sys.executable, "-m", "cicompile", "graph",
                            str(ROOT / "golden" / src / "input.yml")],
                           capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout == block, src


def test_target_guide_excerpts_are_real_output(tmp_path: Path) -> None:
    from cicompile import compile_config

    doc = (ROOT / "docs" / "targets.md").read_text()
    excerpts = re.findall(r"^<!-- excerpt: (\w+) -->\n```\w+\n(.*?)^```", doc, re.M | re.S)
    assert {t for t, _ in excerpts} == {"github", "gitlab", "make"}
    for target, text in excerpts:
        result = compile_config(_readme_config(), target, path=".circleci/config.yml")
        assert result.ok
        assert any(text in content for content in result.files.values()), (
            f"docs/targets.md: the {target} excerpt is no longer in the output of the README's"
            " config: copy the current output into it")


def test_graph_image_is_the_documented_command_output() -> None:
    """docs/images/release-pipeline.svg is what graph.md's command draws (compared by its
    text: the layout may differ between Graphviz versions)."""
    from tests.tools import require_tool

    dot = require_tool("dot")
    doc = (ROOT / "docs" / "graph.md").read_text()
    command = "cicompile graph --format dot golden/release-pipeline/input.yml | dot -Tsvg"
    assert f"`{command}`" in doc and "images/release-pipeline.svg" in doc
    drawn = subprocess.run([sys.executable, "-m", "cicompile", "graph", "--format", "dot",
                            str(ROOT / "golden/release-pipeline/input.yml")],
                           capture_output=True, text=True, check=True).stdout
    svg = subprocess.run([dot, "-Tsvg"], input=drawn, capture_output=True, text=True,
                         check=True).stdout

    def labels(text: str) -> list[str]:
        return re.findall(r"<text[^>]*>([^<]*)</text>", text)

    assert labels(svg) == labels((ROOT / "docs/images/release-pipeline.svg").read_text())
    assert len(labels(svg)) > 10
