"""Tiny dataset trees for the recipe tests: short generated wavs in each layout."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import soundfile

SHARED_DATA_ENV = "TKD_SHARED_DATA"


def write_tone(path: Path, seconds: float = 0.25, rate: int = 16_000, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, 0.5 * np.sin(2 * np.pi * freq * t), rate)
    return path


def write_bad_files(folder: Path, stem: str = "bad") -> tuple[Path, Path]:
    """An empty .wav and a text file named .wav: the two kinds of junk users have."""
    folder.mkdir(parents=True, exist_ok=True)
    empty, text = folder / f"{stem}_empty.wav", folder / f"{stem}_text.wav"
    empty.write_bytes(b"")
    text.write_text("this is not audio\n")
    return empty, text


def write_csv(path: Path, header: list[str] | None, rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def make_speech_commands(root: Path) -> Path:
    """Three words, five files each; 'x0' of every word in valid, 'x1' in test."""
    for k, word in enumerate(("yes", "no", "up")):
        for i in range(5):
            write_tone(root / word / f"x{i}_nohash_0.wav", freq=300 + 100 * k)
    write_tone(root / "_background_noise_" / "white_noise.wav", seconds=1.0)
    words = ("yes", "no", "up")
    (root / "validation_list.txt").write_text("".join(f"{w}/x0_nohash_0.wav\n" for w in words))
    (root / "testing_list.txt").write_text("".join(f"{w}/x1_nohash_0.wav\n" for w in words))
    return root


VOCABULARY = ("Bark", "Meow", "Speech")


def make_fsd50k(root: Path, vocabulary: bool = True) -> Path:
    truth = root / "FSD50K.ground_truth"
    dev = [[101, "Bark,Speech", "/m/a,/m/c", "train"], [102, "Meow", "/m/b", "train"]]
    dev += [[103, "Speech", "/m/c", "val"]]
    ev = [[201, "Bark,Meow", "/m/a,/m/b"], [202, "Speech", "/m/c"]]
    write_csv(truth / "dev.csv", ["fname", "labels", "mids", "split"], dev)
    write_csv(truth / "eval.csv", ["fname", "labels", "mids"], ev)
    if vocabulary:  # deliberately not alphabetical, to show its order is kept
        rows = [[0, "Speech", "/m/c"], [1, "Bark", "/m/a"], [2, "Meow", "/m/b"]]
        write_csv(truth / "vocabulary.csv", None, rows)
    for row in dev:
        write_tone(root / "FSD50K.dev_audio" / f"{row[0]}.wav")
    for row in ev:
        write_tone(root / "FSD50K.eval_audio" / f"{row[0]}.wav")
    return root


def make_esc50(root: Path) -> Path:
    """Two classes, one clip per class per fold (1-5)."""
    rows = []
    for fold in range(1, 6):
        for target, category in ((1, "rooster"), (0, "dog")):
            name = f"{fold}-{100 + target}-A-{target}.wav"
            write_tone(root / "audio" / name)
            rows.append([name, fold, target, category, "False", 100 + target, "A"])
    header = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    write_csv(root / "meta" / "esc50.csv", header, rows)
    return root


def make_folder(root: Path, per_class: int = 4) -> Path:
    for name in ("cat", "dog"):
        for i in range(per_class):
            write_tone(root / name / f"{name}{i}.wav")
    return root


def make_fsdd(root: Path, speakers: tuple[str, ...] = ("ann", "bob"), indices=range(12)) -> Path:
    """FSDD-named 8 kHz tones: one pitch per digit, lengths varying with the index."""
    for digit in range(10):
        for speaker in speakers:
            for index in indices:
                seconds = 0.2 + 0.02 * (index % 5)
                path = root / "recordings" / f"{digit}_{speaker}_{index}.wav"
                write_tone(path, seconds, rate=8000, freq=200 + 150 * digit)
    return root


def make_noise(folder: Path, seconds: float = 3.0) -> Path:
    rng = np.random.default_rng(0)
    for name in ("hiss", "rumble"):
        folder.mkdir(parents=True, exist_ok=True)
        soundfile.write(
            folder / f"{name}.wav", 0.1 * rng.standard_normal(int(seconds * 16_000)), 16_000
        )
    return folder


def shared_data() -> Path | None:
    """The real recordings (``/work/shared/data`` beside the repo), or None when absent."""
    env = os.environ.get(SHARED_DATA_ENV)
    root = Path(env) if env else Path(__file__).resolve().parents[4] / "shared" / "data"
    wanted = (root / "fsdd" / "recordings", root / "speech_commands_noise")
    return root if all(path.is_dir() for path in wanted) else None


def files_under(root: Path) -> dict[str, bytes]:
    """Every file's bytes by relative path, to compare two runs exactly."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
