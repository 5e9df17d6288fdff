"""Stage one's cost: extraction (eager attention + hooks + rollout + resampling) against
the bare teacher forward pass (SDPA attention, no attention output), per clip length.

    python bench/extraction_speed.py --preset whisper-tiny --device cpu   # CPU figures
    python bench/extraction_speed.py --preset xlsr-300m --device cuda     # the GPU target

Random weights are fine for speed. Writes docs/results/extraction-<preset>-<device>.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time

import torch
from results_tables import save_result
from transformers import AutoModelForAudioClassification

from pipeline.data.manifest import LabelSet
from pipeline.teacher.attention import received_attention, rollout_vectors
from pipeline.teacher.model import Teacher, build_teacher
from pipeline.temporal import to_resolution


def _timed(function, repeats: int, device: torch.device) -> float:
    function()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def measure(preset: str, seconds: float, batch: int, device: torch.device, repeats: int) -> dict:
    labels = LabelSet(tuple(str(i) for i in range(10)))
    torch.manual_seed(0)
    model, extractor = build_teacher(preset, labels, seconds)
    config = copy.deepcopy(model.config)  # a shared config would switch the teacher to SDPA too
    bare = AutoModelForAudioClassification.from_config(config, attn_implementation="sdpa")
    bare.load_state_dict(model.state_dict())
    teacher = Teacher(model, extractor, str(device))
    bare = bare.to(device).eval()
    waves = [torch.randn(int(seconds * 16000)) for _ in range(batch)]
    frames = teacher.prepare(waves)[1]
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    @torch.no_grad()
    def forward() -> None:  # the same input processing, then logits only
        inputs, _ = teacher.prepare(waves)
        with torch.autocast(**autocast):
            bare(**inputs)

    @torch.no_grad()
    def extract() -> None:
        output = teacher.attend(waves)
        to_resolution(rollout_vectors(output.maps, output.frames), output.frames, 100).cpu()
        to_resolution(received_attention(output.maps, output.frames), output.frames, 100).cpu()

    bare_s, extract_s = _timed(forward, repeats, device), _timed(extract, repeats, device)
    return {
        "seconds": seconds,
        "batch": batch,
        "frames": int(frames.max()),
        "bare_clips_per_s": round(batch / bare_s, 2),
        "extract_clips_per_s": round(batch / extract_s, 2),
        "overhead": round(extract_s / bare_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="whisper-tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lengths", default="1,4,8")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    device = torch.device(args.device)
    machine = torch.cuda.get_device_name() if device.type == "cuda" else platform.machine()
    rows = [
        measure(args.preset, float(s), args.batch, device, args.repeats)
        for s in args.lengths.split(",")
    ]
    result = {
        "preset": args.preset,
        "device": str(device),
        "machine": machine,
        "threads": torch.get_num_threads(),
        "rows": rows,
        "note": (
            "extraction: eager attention, head-mean hooks, rollout and received attention "
            "for every layer, resampled to 100 bins; bare pass: SDPA, logits only"
        ),
    }
    save_result(f"extraction-{args.preset}-{device.type}", result, time.perf_counter() - started)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
