"""Generate a CircleCI config with N jobs and dense `requires` (each needs up to 5 earlier ones)."""

from __future__ import annotations

import random


def generate(n: int, fan_in: int = 5, seed: int = 1) -> str:
    rnd = random.Random(seed)
    lines = ["version: 2", "jobs:"]
    for i in range(n):
        lines += [f"  j{i}:", "    docker: [{image: cimg/base:stable}]", "    steps:",
                  "      - checkout", f"      - run: echo job {i}"]
    lines += ["workflows:", "  version: 2", "  big:", "    jobs:"]
    for i in range(n):
        if i == 0:
            lines.append("      - j0")
            continue
        k = min(i, fan_in)
        reqs = sorted(set(rnd.randrange(max(0, i - 50), i) for _ in range(k)))
        lines.append(f"      - j{i}: {{requires: [{', '.join(f'j{r}' for r in reqs)}]}}")
    return "\n".join(lines) + "\n"
