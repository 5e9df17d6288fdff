"""Gather the `tkd run` results of bench/reproduce.sh into one Markdown file.

Usage: python bench/collect_results.py OUT  (writes OUT/tables.md and prints it)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(out: Path) -> str:
    parts = []
    for results in sorted((out / "runs").glob("*/results.json")):
        summary = json.loads(results.read_text())
        teacher = summary.get("teacher_test")
        mass = summary.get("teacher_in_event_mass") or {}
        parts += [
            f"### {results.parent.name}",
            "",
            f"Teacher test {summary['metric']}: {teacher * 100:.2f}%." if teacher else "",
            f"Teacher in-event attention mass per layer: rollout {mass.get('rollout')}, "
            f"own attention {mass.get('attention')}, uniform {mass.get('uniform')}.",
            "",
            (results.parent / "results.md").read_text(),
        ]
    wall = out / "wall.json"
    if wall.is_file():
        parts.append(f"Wall time: {json.loads(wall.read_text())}")
    text = "\n".join(parts) + "\n"
    (out / "tables.md").write_text(text)
    return text


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
