"""LSTM-P's training step: autograd through the per-frame loop (how it trained before the
fused recurrence) against :class:`PeepholeRecurrence`, same weights, same batch.

One training step = forward, cross-entropy, backward, Adam, at batch 32 on a 2 s clip's
101 log-mel frames. The two paths alternate inside one process (``--repeats`` rounds of
``--steps`` steps each), so load from other processes hits both alike; the ratio is the
median of the per-round ratios.

    OMP_NUM_THREADS=1 python bench/peephole_lstm_speed.py
Writes docs/results/peephole-lstm-speed-cpu.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch
from results_tables import save_result
from torch import Tensor

from pipeline.student.architectures import build_student


def steps_per_second(step: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--frames", type=int, default=101)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    torch.manual_seed(0)
    model = build_student("lstm-p", num_classes=10, feature_dim=40)
    features = torch.randn(args.batch_size, args.frames, 40)
    labels = torch.randint(0, 10, (args.batch_size,))
    optimizer = torch.optim.Adam(model.parameters())
    lstm = model.lstm

    def training_step(recurrence: Callable[[Tensor], Tensor]) -> Callable[[], None]:
        def step() -> None:
            lstm.forward = lambda x: recurrence(lstm.input_gates(x))
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(features), labels).backward()
            optimizer.step()

        return step

    paths = {"loop": training_step(lstm.loop), "fused": training_step(lstm.fused)}
    for step in paths.values():
        step()  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, step in paths.items():
            rates[name].append(round(steps_per_second(step, args.steps), 3))
    ratios = [f / s for f, s in zip(rates["fused"], rates["loop"], strict=True)]
    result = {
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "frames": args.frames,
        "steps_per_round": args.steps,
        "rounds": args.repeats,
        "steps_per_s": rates,
        "median_steps_per_s": {name: statistics.median(r) for name, r in rates.items()},
        "speedup_median": round(statistics.median(ratios), 2),
        "speedup_range": [round(min(ratios), 2), round(max(ratios), 2)],
    }
    save_result("peephole-lstm-speed-cpu", result, time.perf_counter() - started)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
