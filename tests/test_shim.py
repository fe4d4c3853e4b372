"""The `circleci` shim (targets/templates/circleci_shim.sh.j2), run directly in bash.

Expected splits are worked out by hand from the documented algorithm: `name` deals the sorted
items round-robin; `filesize` and `timings` place the heaviest item first, each into the
lightest node (ties: the lower index), and print a node's items in name order.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cicompile.targets.shim import install_script, may_halt, needs_shim, shim_text

from tests.tools import require_tool

ITEMS = ["b.py", "a.py", "e.py", "c.py", "d.py"]


@pytest.fixture
def shim(tmp_path: Path) -> Path:
    """A directory with the shim installed the way the targets install it."""
    bin_dir = tmp_path / "bin"
    subprocess.run([require_tool("bash"), "-c", install_script(str(bin_dir))], check=True)
    return bin_dir


def circleci(shim: Path, cwd: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None,
             tool: str = "circleci") -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE_", "CICOMPILE_",
                                                                         "GITHUB_"))}
    full_env["PATH"] = f"{shim}:{full_env['PATH']}"
    full_env.update(env or {})
    return subprocess.run([tool, *args], cwd=cwd, input=stdin, env=full_env, text=True,
                          capture_output=True, timeout=30)


def split(shim: Path, cwd: Path, total: int, *flags: str, items: list[str] = ITEMS,
          env: dict[str, str] | None = None) -> list[list[str]]:
    out = []
    for i in range(total):
        r = circleci(shim, cwd, "tests", "split", *flags, "--index", str(i), "--total",
                     str(total), stdin="\n".join(items) + "\n", env=env)
        assert r.returncode == 0, r.stderr
        out.append(r.stdout.split())
    return out


def test_shellcheck() -> None:
    p = subprocess.run([require_tool("shellcheck"), "-s", "bash", "-"], input=shim_text(),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout


def test_split_by_name_deals_sorted_items(shim: Path, tmp_path: Path) -> None:
    assert split(shim, tmp_path, 2) == [["a.py", "c.py", "e.py"], ["b.py", "d.py"]]
    assert split(shim, tmp_path, 3, "--split-by=name") == [
        ["a.py", "d.py"], ["b.py", "e.py"], ["c.py"]]


def test_split_defaults_to_the_node_variables(shim: Path, tmp_path: Path) -> None:
    r = circleci(shim, tmp_path, "tests", "split", stdin="x\ny\nz\n",
                 env={"CIRCLE_NODE_INDEX": "1", "CIRCLE_NODE_TOTAL": "2"})
    assert r.stdout == "y\n"
    r = circleci(shim, tmp_path, "tests", "split", stdin="x\ny\n")
    assert r.stdout == "x\ny\n"  # no variables: one node


def test_split_reads_a_file_argument(shim: Path, tmp_path: Path) -> None:
    (tmp_path / "list").write_text("q\np\n")
    r = circleci(shim, tmp_path, "tests", "split", "--index=0", "--total=2", "list")
    assert r.stdout == "p\n"


def test_split_by_filesize(shim: Path, tmp_path: Path) -> None:
    sizes = {"a.py": 10, "b.py": 50, "c.py": 30, "d.py": 25, "e.py": 5}
    for name, size in sizes.items():
        (tmp_path / name).write_text("x" * size)
    # b 50→0; c 30→1; d 25→1 (30 < 50); a 10→0 (50 < 55); e 5→1 (55 < 60).
    assert split(shim, tmp_path, 2, "--split-by", "filesize") == [
        ["a.py", "b.py"], ["c.py", "d.py", "e.py"]]


def test_split_by_timings_from_a_text_file(shim: Path, tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("a.py 9\nb.py 1\nc.py 1\nd.py 1\n./e.py 7\n")
    env = {"CICOMPILE_TIMINGS": str(tmp_path / "t.txt")}
    # 9 (a) → 0; 7 (e) → 1; then b, c, d (1 s each) → 1, 1 (8 < 9), 0 (9 = 9: lower index).
    assert split(shim, tmp_path, 2, "--split-by=timings", env=env) == [
        ["a.py", "d.py"], ["b.py", "c.py", "e.py"]]


def test_split_by_timings_from_junit(shim: Path, tmp_path: Path) -> None:
    results = tmp_path / "results" / "sub"
    results.mkdir(parents=True)
    (results / "junit.xml").write_text(
        '<?xml version="1.0"?>\n<testsuites>\n'
        '<testsuite name="s" file="a.py"><testcase name="t1" classname="A" time="3"/>'
        '<testcase name="t2" classname="A" time="4.5"/></testsuite>\n'
        '<testsuite name="u">\n  <testcase name="t3" classname="B"\n    file="b.py" time="8"/>\n'
        '</testsuite></testsuites>\n')
    env = {"CICOMPILE_TIMINGS": str(tmp_path / "results")}
    # a = 3 + 4.5 = 7.5 s, b = 8 s, c/d/e the default 10 s: c→0, d→1, e→2 (loads 10, 10,
    # 10); b→0 (lowest index of equal loads); a→1 (10 < 18).
    assert split(shim, tmp_path, 3, "--split-by=timings", env=env) == [
        ["b.py", "c.py"], ["a.py", "d.py"], ["e.py"]]
    # By class name: the classes A and B carry the times.
    got = split(shim, tmp_path, 2, "--split-by=timings", "--timings-type=classname",
                "--time-default=1s", items=["A", "B", "C"], env=env)
    assert got == [["B"], ["A", "C"]]


def test_split_by_timings_without_data_falls_back_to_name(shim: Path, tmp_path: Path) -> None:
    r = circleci(shim, tmp_path, "tests", "split", "--split-by=timings", "--total=2",
                 "--index=0", stdin="b\na\n")
    assert r.returncode == 0 and r.stdout == "a\n"
    assert "falling back to weighting by name" in r.stderr


def test_glob_recursive_braces_sorted_unique(shim: Path, tmp_path: Path) -> None:
    for rel in ["src/a_test.py", "src/deep/er/b_test.py", "c_test.py", "src/x.js", "d.rb"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    r = circleci(shim, tmp_path, "tests", "glob", "**/*_test.py", "src/**/*.{py,js}",
                 "nothing/*")
    assert r.stdout.split() == ["c_test.py", "src/a_test.py", "src/deep/er/b_test.py",
                                "src/x.js"]


def test_run_feeds_the_share_on_stdin(shim: Path, tmp_path: Path) -> None:
    r = circleci(shim, tmp_path, "tests", "run", "--command", "xargs echo got", "--index", "1",
                 "--total", "2", stdin="a\nb\nc\nd\n")
    assert r.stdout == "got b d\n"
    r = circleci(shim, tmp_path, "tests", "run", "--command=exit 9", "--index=2", "--total=3",
                 stdin="a\nb\n")
    assert r.returncode == 0 and "no tests for this node" in r.stderr  # empty share: no run


def test_halt_marks_the_job(shim: Path, tmp_path: Path) -> None:
    env = {"CICOMPILE_HALT": str(tmp_path / "halted"), "GITHUB_ENV": str(tmp_path / "gh_env")}
    r = circleci(shim, tmp_path, "step", "halt", env=env, tool="circleci-agent")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "halted").exists()
    assert (tmp_path / "gh_env").read_text() == "CICOMPILE_HALTED=true\n"


@pytest.mark.parametrize("args", [["tests", "split", "--split-by=size"], ["tests", "nope"],
                                  ["tests", "split", "--index=3", "--total=3"], ["orb"]])
def test_usage_errors(shim: Path, tmp_path: Path, args: list[str]) -> None:
    r = circleci(shim, tmp_path, *args)
    assert r.returncode == 2 and "cicompile shim" in r.stderr


def test_which_jobs_get_the_shim() -> None:
    from cicompile import ir

    def job(command: str, parallelism: int = 1) -> ir.Job:
        return ir.Job(name="j", executor=ir.Executor(kind=ir.ExecutorKind.NONE),
                      steps=(ir.Run(name="r", command=command),), parallelism=parallelism)

    assert needs_shim(job("echo", 2))
    assert needs_shim(job("circleci tests glob '*.py'"))
    assert needs_shim(job("x && circleci-agent step halt")) and may_halt(job("circleci-agent"))
    assert not needs_shim(job("circleci config validate")) and not needs_shim(job("echo"))
    assert not may_halt(job("circleci tests glob x"))


def test_a_github_workflow_holds_the_shim_and_the_watchdog_once() -> None:
    import yaml
    from cicompile import compile_config

    config = """\
version: 2.1
jobs:
  split:
    docker: [{image: cimg/base:stable}]
    parallelism: 2
    steps:
      - run: {command: echo a b | circleci tests split, no_output_timeout: 5m}
  halt:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: {command: circleci-agent step halt, no_output_timeout: 1m}
      - run: echo skipped
  plain:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: echo plain
workflows:
  main:
    jobs: [split, halt, plain]
"""
    result = compile_config(config, "github", path="config.yml")
    text = result.files[".github/workflows/main.yml"]
    assert text.count("cc_shim_split() {") == 1 and text.count("cicompile_watch() {") == 1
    assert text.count("- *circleci-shim\n") == 1 and text.count("- *cicompile-watch\n") == 1
    jobs = yaml.safe_load(text)["jobs"]
    installs = {name: [s for s in jobs[name]["steps"] if s["name"].startswith("Install the")]
                for name in ("split", "halt", "plain")}
    assert installs["split"] == installs["halt"] and len(installs["split"]) == 2
    assert installs["plain"] == []
    # The halt guard applies to the job's own steps, never to the shared install steps.
    assert all("if" not in s for s in installs["halt"])
    assert jobs["halt"]["steps"][-1]["if"] == "${{ env.CICOMPILE_HALTED != 'true' }}"
