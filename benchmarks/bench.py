"""cicompile benchmark: ratios against baselines measured in the same run, on this machine.

  .venv/bin/python benchmarks/bench.py [--quick]

(a) throughput: compiling a set of configs (the corpus when ../shared/corpus exists, else the
    golden inputs) to all four targets, vs. the libyaml floor: yaml.load(CSafeLoader) of the
    inputs + yaml.dump(CSafeDumper) of the YAML outputs. Goal ≤ 3×. Two ways: per target
    (`compile_config` once per target, the front end run 4 times: what a script calling
    `cicompile --target T` for each target does) and shared (`compile_targets`, one front-end
    run for the 4 targets: `cicompile --target all`, `cicompile audit`).
(b) cold start: `cicompile --target github small.yml` vs `python -c "import yaml, click"`,
    both from bytecode (cicompile's is written first, as `pip install` would), runs
    interleaved. Goal ≤ 1.5×.
(c) scaling: generated workflows of 100, 1,000 and 10,000 jobs with dense `requires`
    (GitHub target). Goal: near-linear, 10,000 ≤ 12× the time of 1,000. Each size is
    compiled 3 times, the sizes in turn, each run after a full collection; best CPU time.
Medians of several repetitions for (a) and (b); no assertion anywhere (see
docs/performance.md).
"""

from __future__ import annotations

import argparse
import compileall
import gc
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from cicompile import compile_config, compile_targets  # noqa: E402
from gen import generate  # noqa: E402

TARGETS = ("github", "gitlab", "make", "shell")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _interleaved(fns: list[Any], reps: int, cpu: Any) -> list[tuple[float, float]]:
    """Medians of the (wall-clock, CPU) seconds of each of `fns`, run in turn (a change in the
    machine's load then hits every side alike). CPU time, from `cpu`, is the cross-check on a
    shared machine: other processes inflate wall-clock time, hardly CPU time."""
    wall: list[list[float]] = [[] for _ in fns]
    used: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            c, t = cpu(), time.perf_counter()
            fn()
            wall[i].append(time.perf_counter() - t)
            used[i].append(cpu() - c)
    med = statistics.median
    return [(med(w), med(u)) for w, u in zip(wall, used, strict=True)]


def _paired(a: Any, b: Any, reps: int, cpu: Any) -> tuple[float, float, float, float]:
    (wa, ua), (wb, ub) = _interleaved([a, b], reps, cpu)
    return wa, wb, ua, ub


def _inputs() -> list[tuple[str, str]]:
    corpus = ROOT.parent / "shared" / "corpus" / "circleci"
    files = sorted(corpus.glob("*.yml")) if corpus.is_dir() else sorted(
        (ROOT / "golden").glob("*/input.yml"))
    out = []
    for f in files:
        text = f.read_text()
        if compile_config(text, "github", path=str(f)).ok:
            out.append((str(f), text))
    return out


def throughput(reps: int) -> tuple[list[tuple[float, float]], int]:
    inputs = _inputs()
    yaml_outputs: list[Any] = []
    for path, text in inputs:
        for t in ("github", "gitlab"):
            for content in compile_config(text, t, path=path).files.values():
                yaml_outputs.append(yaml.load(content, Loader=yaml.CSafeLoader))

    def ours() -> None:
        for path, text in inputs:
            for t in TARGETS:
                compile_config(text, t, path=path)

    def shared() -> None:
        for path, text in inputs:
            compile_targets(text, TARGETS, path=path)

    def floor() -> None:
        for _, text in inputs:
            yaml.load(text, Loader=yaml.CSafeLoader)
        for doc in yaml_outputs:
            yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False)

    ours()  # warm caches (lark grammar, jinja templates), as a long batch would
    return _interleaved([ours, shared, floor], reps, time.process_time), len(inputs)


def _compile_bytecode() -> None:
    """Write cicompile's `__pycache__`, as `pip install` does for yaml and click.

    An editable install has none, and with PYTHONDONTWRITEBYTECODE set (as in this project's
    sandbox) Python never writes it: every start would then compile cicompile's sources while
    yaml and click load bytecode, which is not what an installed cicompile does.
    """
    import cicompile

    compileall.compile_dir(str(Path(cicompile.__file__).parent), quiet=1)


def cold_start(reps: int) -> tuple[float, float, float, float]:
    small = ROOT / "golden" / "seed-sequential" / "input.yml"
    exe = Path(sys.executable).parent / "cicompile"
    ours = [str(exe), "--target", "github", str(small)]
    base = [sys.executable, "-c", "import yaml, click"]

    def run(cmd: list[str]) -> None:
        subprocess.run(cmd, check=True, capture_output=True)

    _compile_bytecode()
    run(ours)
    run(base)
    return _paired(lambda: run(ours), lambda: run(base), reps, _children_cpu)


def scaling(sizes: tuple[int, ...], reps: int) -> dict[int, tuple[float, float]]:
    """{size: (best wall-clock, best CPU seconds)} of `compile_config(text, "github")`.

    Every run starts after `gc.collect()`, so each finds the same heap (the run before left
    up to 10,000 jobs' worth of garbage, and compile_config pauses the collector); the sizes
    are measured in turn, so a change in the machine's load hits each alike; the best of
    `reps` runs is the least disturbed one. The smaller sizes are measured exactly as the
    largest: the ratio compares like with like.
    """
    texts = {n: generate(n) for n in sizes}
    compile_config(texts[sizes[0]], "github")  # lazy imports and memoised templates, once
    wall: dict[int, list[float]] = {n: [] for n in sizes}
    used: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(reps):
        for n, text in texts.items():
            gc.collect()
            c, t = time.process_time(), time.perf_counter()
            compile_config(text, "github")
            wall[n].append(time.perf_counter() - t)
            used[n].append(time.process_time() - c)
    return {n: (min(wall[n]), min(used[n])) for n in sizes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, no 10,000-job case")
    args = ap.parse_args()
    reps = 3 if args.quick else 5
    ((ours, ours_cpu), (shared, shared_cpu), (floor, floor_cpu)), n = throughput(reps)
    print(f"(a) throughput: {n} configs x 4 targets, libyaml floor {floor:.3f} s"
          f" (CPU {floor_cpu:.3f} s); goal <= 3x")
    for label, wall, cpu in (("per target", ours, ours_cpu), ("shared", shared, shared_cpu)):
        print(f"    {label:10}: {wall:.3f} s -> {wall / floor:.2f}x; CPU time {cpu:.3f} s"
              f" -> {cpu / floor_cpu:.2f}x")
    c_ours, c_base, c_ours_cpu, c_base_cpu = cold_start(reps * 4)
    print(f"(b) cold start: {c_ours * 1000:.0f} ms vs import yaml, click {c_base * 1000:.0f} ms"
          f" -> {c_ours / c_base:.2f}x (goal <= 1.5x); CPU time {c_ours_cpu * 1000:.0f} ms vs"
          f" {c_base_cpu * 1000:.0f} ms -> {c_ours_cpu / c_base_cpu:.2f}x")
    sizes = (100, 1000) if args.quick else (100, 1000, 10000)
    times = scaling(sizes, 3)
    row = ", ".join(f"{k} jobs {cpu:.3f} s" for k, (_, cpu) in times.items())
    (wall_a, cpu_a), (wall_b, cpu_b) = times[sizes[-2]], times[sizes[-1]]
    print(f"(c) scaling, CPU time, best of 3: {row} -> {sizes[-1]}/{sizes[-2]} ="
          f" {cpu_b / cpu_a:.1f}x (goal <= 12x per 10x jobs); wall-clock {wall_b / wall_a:.1f}x")


if __name__ == "__main__":
    main()
