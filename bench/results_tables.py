"""Results are data: every table in docs/results.md (and every figure in the README's
results summary) is rendered from docs/results/*.json.

A table sits between ``<!-- results: NAME -->`` and ``<!-- /results -->`` in a page;
this script rewrites what is between the markers from the JSON that ``TABLES[NAME]``
reads, so a number in the page can always be traced to a committed file (the command,
the commit, the machine, the wall time and the per-run values). A file whose
``reproducible`` is false holds numbers transcribed from an earlier page whose outputs
were not kept; its tables say so in a line above them.

    python bench/results_tables.py          # rewrite the pages
    python bench/results_tables.py --check  # exit 1, naming the tables, if one is stale

Benchmarks write their JSON with :func:`save_result`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.stats import ConditionResult, PairedGain, Summary, markdown_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "docs" / "results"
PAGES = (ROOT / "docs" / "results.md", ROOT / "README.md")
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)
NOT_REPRODUCIBLE = "**Not reproducible data**"


def save_result(
    name: str, result: dict[str, Any], wall_s: float | None, command: str | None = None
) -> Path:
    """Write a benchmark's result with what makes it checkable: command (default: this
    script's), commit, machine."""
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    record = {
        "command": command or " ".join(["python", *sys.argv]),
        "commit": commit or None,
        "machine": result.pop("machine", platform.machine()),
        "wall_s": None if wall_s is None else round(wall_s, 1),
        "reproducible": True,
        **result,
    }
    out = RESULTS_DIR / f"{name}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    return out


def protocol_parser(doc: str | None) -> argparse.ArgumentParser:
    """The arguments every script committing an experiment's runs as data takes; each adds
    where its runs are."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("name", help="docs/results/NAME.json")
    parser.add_argument("command", help="the command that ran the experiment")
    parser.add_argument("wall_s", type=float, help="its wall time, seconds")
    parser.add_argument("--cut", action="append", help="something cut for time")
    return parser


def cpu_machine() -> str:
    """This machine as results name it: architecture, cores, no GPU."""
    return f"{platform.machine()} CPU, {len(os.sched_getaffinity(0))} cores, no GPU"


def load(name: str, results: Path) -> dict[str, Any]:
    path = results / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SystemExit(f"{path}: cannot be read as JSON ({error})") from None


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def provenance(data: dict[str, Any]) -> str:
    """The line under every table: where it came from, or that it cannot be reproduced."""
    if data.get("published"):
        return f"\n**Published figures, not measured by tkd**: {data['provenance']}\n"
    if not data.get("reproducible", False):
        return f"\n{NOT_REPRODUCIBLE}: {data['provenance']}\n"
    commit = (data.get("commit") or "unknown")[:10]
    wall = f", {data['wall_s']} s wall" if data.get("wall_s") is not None else ""
    return f"\nCommand: `{data['command']}` (commit {commit}, {data['machine']}{wall}).\n"


def score(cell: dict[str, Any] | None) -> str:
    """Mean ± std (n) in percent; n = 1 shows no spread."""
    if cell is None:
        return ""
    spread = "" if cell["std"] is None else f" ± {cell['std'] * 100:.1f}"
    return f"{cell['mean'] * 100:.1f}{spread} (n = {cell['n']})"


def mass(cell: dict[str, Any] | None) -> str:
    """An in-event mass as mean ± std (n); n = 1 shows no spread."""
    if cell is None:
        return ""
    spread = "" if cell["std"] is None else f" ± {cell['std']:.3f}"
    return f"{cell['mean']:.3f}{spread} (n = {cell['n']})"


# -- one renderer per table -----------------------------------------------------------
def extraction(results: Path) -> str:
    rows, sources = [], []
    for preset in ("whisper-6l", "whisper-tiny"):
        data = load(f"extraction-{preset}-cpu", results)
        sources.append(provenance(data).strip())
        for row in data["rows"]:
            rows.append(
                [
                    preset,
                    f"{row['seconds']:g} s",
                    row["batch"],
                    f"{row['bare_clips_per_s']:,}",
                    f"{row['extract_clips_per_s']:,}",
                    f"{row['overhead']:.2f}×",
                ]
            )
    header = ["teacher", "clip", "batch", "bare clips/s", "extraction clips/s", "overhead"]
    return table(header, rows) + "\n" + "\n".join(sources) + "\n"


def throughput(name: str) -> Callable[[Path], str]:
    """KD's cost per student and data path (bench/student_throughput.py) in result ``name``."""
    return lambda results: _throughput(load(name, results))


def _throughput(data: dict[str, Any]) -> str:
    kd = data["kd"]
    rows = [
        [
            row["student"],
            row["views"],
            row["steps_per_s_none"],
            row[f"steps_per_s_{kd}"],
            f"{row['kd_cost'] * 100:+.1f} % ({row['kd_cost_range'][0] * 100:+.1f} to "
            f"{row['kd_cost_range'][1] * 100:+.1f})",
            f"{row['attention_head_macs'] * 100:.1f} %" if row["attention_head_macs"] else "none",
        ]
        for row in data["rows"]
    ]
    unit = "steps/CPU s" if data.get("rate") == "cpu" else "steps/s"
    header = ["student", "views", f"{unit}, --kd none", f"{unit}, --kd {kd}"]
    header.append(f"KD cost, median of {data['repeats']} rounds (range)")
    header.append("attention head, share of the student's multiply-adds")
    return table(header, rows) + provenance(data)


def cache_reuse(results: Path) -> str:
    data = load("cache-reuse-cpu", results)
    rows = [[f"N = {n}", f"{ratio:.1f}×"] for n, ratio in data["online_over_cached"].items()]
    times = (
        f"\nExtraction {data['extraction_s']} s, one cached run {data['cached_run_s']} s, "
        f"one online run {data['online_run_s']} s ({data['teacher']} teacher, "
        f"{data['student']}, {data['clips']} clips, {data['epochs']} epochs).\n"
    )
    return table(["student runs", "online / cached"], rows) + times + provenance(data)


def kd_accuracy(name: str) -> Callable[[Path], str]:
    """Test score per student, w/o KD and per teacher attention source, plus the teacher."""

    def render(results: Path) -> str:
        data = load(name, results)
        students, conditions = data["students"], data["conditions"]
        header = ["", *students, "teacher"]
        rows = [
            [
                label,
                *(score(students[s].get(key, {}).get("test")) for s in students),
                score(data["teacher"]["test"]) if key == "none" else "",
            ]
            for key, label in conditions.items()
        ]
        return table(header, rows) + provenance(data)

    return render


def kd_mass(name: str) -> Callable[[Path], str]:
    """Share of attention inside the event: the teacher's per layer and each student's."""

    def render(results: Path) -> str:
        data = load(name, results)
        students, conditions, teacher = data["students"], data["conditions"], data["teacher"]
        header = ["", "teacher rollout per layer", "teacher own attention per layer", *students]
        rows = []
        for key, label in conditions.items():
            layers = [
                " / ".join(f"{v:.3f}" for v in teacher["in_event_mass"][kind])
                if key == "none"
                else ""
                for kind in ("rollout", "attention")
            ]
            cells = []
            for student in students:
                cell = students[student].get(key, {})
                note = f" ({cell['mass_note']})" if "mass_note" in cell else ""
                cells.append(f"{cell['mass']:.3f}{note}" if "mass" in cell else "")
            rows.append([label, *layers, *cells])
        uniform = f"\nUniform attention would give {data['uniform_mass']}.\n"
        return table(header, rows) + uniform + provenance(data)

    return render


def profile(results: Path) -> str:
    data = load("profile-cpu", results)
    formats = data["formats"]
    header = [
        "student",
        "params",
        "MACs (M)",
        f"size (KB): {' / '.join(formats)}",
        f"latency (ms): {' / '.join(formats)}",
    ]
    rows = [
        [
            row["student"],
            f"{row['params']:,}",
            f"{row['macs_m']:.2f}",
            " / ".join(f"{kb:g}" for kb in row["size_kb"]),
            " / ".join(f"{ms:.2f}" for ms in row["latency_ms"]),
        ]
        for row in data["rows"]
    ]
    return table(header, rows) + provenance(data)


def paper_lambda(results: Path) -> str:
    """The paper's λ sweep at L = 8 s as recorded in shared/docs/method.md."""
    data = load("paper-choi2022", results)
    sweep = data["lambda_sweep"]
    header = ["L", "student", *(f"λ = {w:g}" for w in sweep["weights"]), "best gain over λ = 0"]
    rows = []
    for length, students in sweep["lengths"].items():
        for student, values in students.items():
            gain = max(values[1:]) - values[0]
            rows.append([f"{length} s", student, *(f"{v:.2f}" for v in values), f"{gain:+.2f}"])
    teacher = f"\nTeacher at L = 8 s: {sweep['teacher']['8']:.2f}.\n"
    return table(header, rows) + teacher + provenance(sweep)


def paper_table2(results: Path) -> str:
    """The paper's Table 2 (w/o → w/ KD), with gains and the five-student mean gain."""
    data = load("paper-choi2022", results)["table2"]
    students = data["students"]
    header = ["L", *students, "mean gain", "teacher"]
    rows = []
    for length, row in data["lengths"].items():
        gains = [row[s][1] - row[s][0] for s in students]
        cells = [f"{row[s][0]:.2f} → {row[s][1]:.2f} ({g:+.2f})" for s, g in zip(students, gains)]
        mean = f"{sum(gains) / len(gains):+.2f}"
        rows.append([f"{length} s", *cells, mean, f"{row['teacher']:.2f}"])
    return table(header, rows) + provenance(data)


def pretrained_teachers(results: Path) -> str:
    """The pretrained presets fine-tuned on noisy digits: accuracy, time, and where their
    attention sits (in-event mass per layer, own attention and rollout)."""
    names = ("whisper-tiny-en", "whisper-base")
    runs = {name: load(f"pretrained-{name}", results) for name in names}
    header = ["teacher", "test", "valid", "fine-tuning", "in-event mass: own attention"]
    header.append("rollout through layer K")
    rows, notes = [], []
    for name, data in runs.items():
        teacher, mass = data["teacher"], data["extraction"]["in_event_mass"]
        rows.append(
            [
                name.replace("-en", ".en"),
                f"{teacher['test'] * 100:.1f}",
                f"{teacher['valid'] * 100:.1f}",
                f"{teacher['finetune_wall_seconds']} s",
                " / ".join(f"{v:.3f}" for v in mass["attention"]),
                " / ".join(f"{v:.3f}" for v in mass["rollout"]),
            ]
        )
        notes.append(f"- `{name}`: {provenance(data).strip()}")
    first = runs[names[0]]
    uniform = first["extraction"]["in_event_mass"]["uniform"]
    return (
        table(header, rows)
        + f"\nn = {first['data']['clips']['test']} test clips, one seed; split: "
        + f"{first['data']['split']}. Uniform attention would give {uniform}.\n\n"
        + "\n".join(notes)
        + "\n"
    )


def speaker_folds(name: str) -> Callable[[Path], str]:
    """A `run` over speaker folds: each fold's teacher, then every condition over folds ×
    seeds with its paired KD gain (pipeline.stats renders it, as `run` does)."""

    def render(results: Path) -> str:
        data = load(name, results)
        header = ["fold", "test speaker", "teacher test", "teacher in-event mass, own attention"]
        header.append("auto chose")
        rows = [
            [
                fold["fold"],
                ", ".join(fold.get("test_speakers", [])),
                f"{fold['teacher_test'] * 100:.1f}",
                " / ".join(f"{v:.3f}" for v in fold["teacher_in_event_mass"]["attention"]),
                fold.get("attention_sources", {}).get("auto", ""),
            ]
            for fold in data["folds"]
        ]
        if "pooled_from" in data:  # folds of several protocol runs: say which made each
            header.append("from")
            for row, fold in zip(rows, data["folds"], strict=True):
                row.append(f"`{fold['origin']}`")
        conditions = [
            ConditionResult(
                row["student"],
                row["kd"],
                row["kd_weight"],
                row["source"],
                Summary(**row["test"]),
                None if row["paired_gain"] is None else PairedGain.from_json(row["paired_gain"]),
            )
            for row in data["table"]
        ]
        parts = [table(header, rows), markdown_table(conditions)]
        if any(row["test_in_event_mass"] for row in data["table"]):
            masses = [
                [row["student"], row["kd"], row["source"] or "", mass(row["test_in_event_mass"])]
                for row in data["table"]
            ]
            header = ["student", "KD", "teacher attention", "student's in-event mass"]
            parts.append(table([*header[:3], f"{header[3]} (mean ± std, n)"], masses))
        if data.get("source_differences"):
            parts.append(source_differences(data["source_differences"]))
        return "\n".join(parts) + provenance(data)

    return render


def source_differences(rows: list[dict[str, Any]]) -> str:
    """Another teacher attention source against the rollout, paired on fold and seed."""
    body = []
    for row in rows:
        cell = PairedGain.from_json(row["difference"])
        verdict = "yes" if cell.excludes_zero else "no (interval includes 0)"
        body.append([row["student"], row["kd"], f"{row['source']} − {row['minus']}"])
        body[-1] += [cell.format(), verdict]
    header = ["student", "KD", "sources", "paired difference [95 % CI]", "a difference?"]
    return table(header, body)


def views_comparison(name: str) -> Callable[[Path], str]:
    """Issue 14's conditions (bench/views_result.py) in result ``name``: each fold's
    teacher and its views, every condition over folds × seeds, the paired comparisons, and
    the target's verdict."""
    return lambda results: _views_comparison(load(name, results))


def _views_comparison(data: dict[str, Any]) -> str:
    folds = [
        [fold["fold"], ", ".join(fold["test_speakers"]), f"{fold['teacher_test'] * 100:.1f}"]
        + [" / ".join(f"{x * 100:.1f}" for x in fold["train_accuracy_per_view"] or [])]
        + [fold["auto_source"] or "", _against_uniform(fold["in_event_mass"], fold["uniform"])]
        for fold in data["folds"]
    ]
    header = [
        "fold",
        "test speaker",
        "teacher test",
        "teacher on the training clips, views 0 / 1 / …",
    ]
    header += ["`auto` attention", "its in-event mass"]
    parts = [table(header, folds)]
    rows = [
        [row["student"], row["condition"], row["description"], row["epochs"]]
        + [score(row["valid"]), score(row["test"]), mass(row["test_in_event_mass"])]
        for row in data["conditions"]
    ]
    header = ["student", "", "condition", "epochs", "valid (in-speaker)", "test (unseen speaker)"]
    header.append("student's in-event mass (test)")
    parts.append(table(header, rows))
    rows = []
    for row in data["comparisons"]:
        gain = PairedGain.from_json(row["test"])
        verdict = "yes" if gain.excludes_zero else "no (interval includes 0)"
        valid = PairedGain.from_json(row["valid"]).format()
        rows.append([row["student"], f"{row['second']} − {row['first']}", row["what"]])
        rows[-1] += [valid, gain.format(), verdict]
    header = ["student", "pair", "what changes", "valid, paired", "test, paired [95 % CI]"]
    parts.append(table([*header, "a difference?"], rows))
    goal = data["target"]
    lines = [
        f"- {student}: views + KD condition best on valid {cell['best']}, "
        f"{PairedGain.from_json(cell['gain']).format()} over c: target (≥ +5 points, interval "
        f"clear of 0) {'met' if cell['met'] else 'missed'}"
        for student, cell in goal["kd_gain_over_views"].items()
        if cell
    ]
    best = goal["best_student"]
    lines.append(
        f"- student and condition best on valid: {best['student']} {best['condition']}, "
        f"test {score(best['test'])}, "
        f"{goal['gap_to_teacher_points']:.1f} points under its teachers (target ≤ 8: "
        f"{'met' if goal['within_gap'] else 'missed'})"
    )
    if data["cut_for_time"]:
        lines.append(f"- cut for time: {'; '.join(data['cut_for_time'])}")
    return "\n".join(parts) + "\n" + "\n".join(lines) + "\n" + provenance(data)


# The views comparison's pairs the README quotes: views, KD with views, patient training.
README_VIEWS_PAIRS = {
    ("b", "c"),
    ("c", "d"),
    ("c", "e"),
    ("c", "f"),
    ("c", "c long"),
    ("c long", "f long"),
}


def readme_views(results: Path) -> str:
    """The README's lines on what views and KD bought (from the views comparison)."""
    data = load("noisy-digits-views-cpu", results)
    rows = {(row["student"], row["condition"]): row for row in data["conditions"]}
    lines = []
    for row in data["comparisons"]:
        if (row["first"], row["second"]) in README_VIEWS_PAIRS:
            gain = PairedGain.from_json(row["test"])
            verdict = "a gain" if gain.interval and gain.interval[0] > 0 else "not a gain"
            if gain.interval and gain.interval[1] < 0:
                verdict = "a loss"
            base = rows[row["student"], row["first"]]["test"]
            lines.append(
                f"- {row['student']}, {row['what']}: {row['second']} − {row['first']} "
                f"{gain.format()} on test ({row['first']}: {score(base)}): {verdict};"
            )
    goal = data["target"]
    best = goal["best_student"]
    lines.append(
        f"- best on valid: {best['student']} {best['condition']}, test {score(best['test'])}, "
        f"{goal['gap_to_teacher_points']:.1f} points under the teachers "
        f"({goal['teacher_test_mean'] * 100:.1f} %)."
    )
    return "\n".join(lines) + "\n"


def _against_uniform(mass: float | None, uniform: float | None) -> str:
    return "" if mass is None else f"{mass:.3f} (uniform: {uniform:.3f})"


def _kd_costs(rows: list[dict[str, Any]]) -> str:
    """The range of KD's cost over throughput rows, naming the students (and the share of
    their multiply-adds that a training-only attention head adds)."""
    costs = [row["kd_cost"] * 100 for row in rows]
    heads = [row["attention_head_macs"] * 100 for row in rows]
    head = (
        f", the head {min(heads):.1f}–{max(heads):.1f} % of their multiply-adds"
        if any(heads)
        else ""
    )
    students = ", ".join(sorted({row["student"] for row in rows}))
    return f"{min(costs):+.1f} to {max(costs):+.1f} % ({students}{head})"


def readme_summary(results: Path) -> str:
    """The benchmark figures the README quotes."""
    six = load("extraction-whisper-6l-cpu", results)["rows"]
    throughput = load("student-throughput-cpu", results)["rows"]
    reuse = load("cache-reuse-cpu", results)["online_over_cached"]
    overheads = [row["overhead"] for row in six]
    tiny, base = (load(f"pretrained-{n}", results) for n in ("whisper-tiny-en", "whisper-base"))
    return (
        f"- the pretrained `whisper-tiny.en` teacher reaches {tiny['teacher']['test'] * 100:.1f} % "
        f"test on noisy digits L = 2 s after 3 epochs, `whisper-base` "
        f"{base['teacher']['test'] * 100:.1f} % (n = {tiny['data']['clips']['test']}, one seed, "
        "in-speaker split);\n"
        f"- extraction costs {min(overheads):.2f}–{max(overheads):.2f}× the bare teacher "
        "forward for a 6-layer Whisper encoder on CPU (1–8 s clips);\n"
        "- attention and logit KD together cost "
        + _kd_costs([row for row in throughput if not row["attention_head_macs"]])
        + " of stage-two training throughput on CPU for the students that attend by "
        "themselves (targets and losses), "
        + _kd_costs([row for row in throughput if row["attention_head_macs"]])
        + " for those that train an attention head for KD (median per student, with and "
        "without views; the goal: < 3 %);\n"
        f"- 20 student runs against one cache are {reuse['20']:.1f}× faster than running "
        "the teacher online.\n"
    )


def readme_kd(results: Path) -> str:
    """What KD did on unseen speakers, per student and KD mode: the README's summary of the
    speaker-fold protocol, with effect sizes, intervals and n."""
    data = load("noisy-digits-speaker-folds-pooled-cpu", results)
    teachers = [fold["teacher_test"] * 100 for fold in data["folds"]]
    lines = [
        f"- teacher (`whisper-tiny.en`, fine-tuned per fold): {min(teachers):.1f}–"
        f"{max(teachers):.1f} % on the held-out speakers of {len(teachers)} speaker folds;"
    ]
    for row in data["table"]:
        if row["kd"] == "none":
            lines.append(f"- {row['student']} without KD: {score(row['test'])};")
            continue
        gain = row["paired_gain"]
        low, high = (edge * 100 for edge in gain["interval"])
        verdict = "a gain" if gain["excludes_zero"] and gain["mean"] > 0 else "not a gain"
        if gain["excludes_zero"] and gain["mean"] < 0:
            verdict = "a loss"
        source = f" ({row['source']} attention)" if row["source"] else ""
        lines.append(
            f"  - {row['kd']} KD{source}: {score(row['test'])}, paired {gain['mean'] * 100:+.1f} "
            f"[{low:+.1f}, {high:+.1f}] (n = {gain['n']}): {verdict};"
        )
    sources = load("noisy-digits-speaker-folds-rollout-cpu", results)["source_differences"]
    for row in sources:
        cell = PairedGain.from_json(row["difference"])
        verdict = "a difference" if cell.excludes_zero else "no difference shown"
        lines.append(
            f"- {row['student']}, {row['kd']} KD from `{row['source']}` minus from the "
            f"{row['minus']}: {cell.format()}: {verdict};"
        )
    return "\n".join(lines) + "\n"


TABLES: dict[str, Callable[[Path], str]] = {
    "extraction": extraction,
    "student-throughput": throughput("student-throughput-cpu"),
    "student-throughput-head16": throughput("student-throughput-cpu-head16"),
    "cache-reuse": cache_reuse,
    "demo-accuracy": kd_accuracy("demo-cpu"),
    "demo-mass": kd_mass("demo-cpu"),
    "in-speaker-accuracy": kd_accuracy("noisy-digits-in-speaker-cpu"),
    "in-speaker-mass": kd_mass("noisy-digits-in-speaker-cpu"),
    "profile": profile,
    "paper-lambda": paper_lambda,
    "paper-table2": paper_table2,
    "pretrained-teachers": pretrained_teachers,
    "speaker-folds": speaker_folds("noisy-digits-speaker-folds-cpu"),
    "speaker-folds-rollout": speaker_folds("noisy-digits-speaker-folds-rollout-cpu"),
    "speaker-folds-pooled": speaker_folds("noisy-digits-speaker-folds-pooled-cpu"),
    "views-comparison": views_comparison("noisy-digits-views-cpu"),
    "views-capacity": views_comparison("noisy-digits-views-capacity-cpu"),
    "readme-kd": readme_kd,
    "readme-views": readme_views,
    "readme-summary": readme_summary,
}


def render(page: str, results: Path = RESULTS_DIR) -> str:
    """The page with every marked block rewritten from the JSON; unknown names fail."""

    def block(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise SystemExit(f"unknown results block {name!r}; known: {', '.join(TABLES)}")
        return f"{match[1]}{TABLES[name](results)}{match[4]}"

    return BLOCK.sub(block, page)


def stale_blocks(page: str, results: Path = RESULTS_DIR) -> list[str]:
    fresh = {m["name"]: m["body"] for m in BLOCK.finditer(render(page, results))}
    return [m["name"] for m in BLOCK.finditer(page) if fresh[m["name"]] != m["body"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the page is stale")
    args = parser.parse_args()
    for path in PAGES:
        page = path.read_text(encoding="utf-8")
        if not args.check:
            path.write_text(render(page), encoding="utf-8")
        elif stale := stale_blocks(page):
            raise SystemExit(f"{path}: stale table(s) {', '.join(stale)}; run {__file__}")


if __name__ == "__main__":
    main()
