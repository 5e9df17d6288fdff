"""Noisy spoken digits: FSDD recordings placed at random times inside L seconds of
background noise, in the style of "Noisy Speech Commands v2". The digit is short and
its position varies, so a model has to find *when* it is spoken.

Splits follow the FSDD convention: index 0-4 of every digit/speaker is test; valid is
carved from the conventional train part by a fixed rule, index 5-9; 10-49 is train.

SNR: drawn uniformly from ``snr_db`` per clip, measured over the digit's own span (not
the whole clip). The default -5..+5 dB makes the noise as loud as the speech on average,
and up to 3x its power at the low end; with 0.2-2.3 s digits in a 2-8 s clip the
clip-level SNR is lower still. Hard, yet the digit stays audible, so it is learnable.

Everything a clip draws (noise file, excerpt, SNR, offsets, partner digits) comes from
an rng seeded by (seed, clip id), so a clip is identical whatever the order, the number
of workers, or the other clips.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Sequence
from pathlib import Path

from pipeline.data.audio import DEFAULT_SAMPLE_RATE
from pipeline.data.manifest import LabelSet, Manifest
from pipeline.data.recipes.common import (
    NoisyJob,
    NoisySpec,
    Skipped,
    Source,
    clip_rng,
    noisy_dataset,
    probe_sources,
    remix,
    require_dir,
)
from pipeline.errors import ManifestError

GENERATOR = "noisy-digits"
DIGITS = tuple(str(digit) for digit in range(10))
DEFAULT_SNR_DB = (-5.0, 5.0)
FSDD_NAME = re.compile(r"(?P<digit>\d)_(?P<speaker>[^_]+)_(?P<index>\d+)")

# Same clip, fresh offsets, noise excerpt and SNR: the teacher's on-the-fly augmentation.
remix_noisy_digits = remix


def fsdd_split(index: int) -> str:
    """FSDD convention: 0-4 test; valid carved from train as 5-9; 10-49 train."""
    return "test" if index < 5 else "valid" if index < 10 else "train"


def fsdd_sources(
    fsdd: Path, speakers: Collection[str] | None = None
) -> tuple[list[Source], list[Skipped]]:
    """FSDD recordings as sources; ``fsdd`` is the repository or its ``recordings/``.

    A .wav whose name does not follow ``{digit}_{speaker}_{index}`` cannot be labelled,
    so it is reported rather than silently ignored.
    """
    require_dir(fsdd, "FSDD")
    folder = fsdd / "recordings" if (fsdd / "recordings").is_dir() else fsdd
    sources, skipped = [], []
    for path in sorted(folder.glob("*.wav")):
        name = FSDD_NAME.fullmatch(path.stem)
        if name is None:
            skipped.append(
                Skipped(path.stem, str(path), "name is not {digit}_{speaker}_{index}.wav")
            )
        elif speakers is None or name["speaker"] in speakers:
            split = fsdd_split(int(name["index"]))
            sources.append(Source(path.stem, path, (name["digit"],), split))
    if not sources:
        wanted = f" of speaker(s) {sorted(speakers)}" if speakers is not None else ""
        raise ManifestError(folder, f"holds no FSDD recordings{wanted}")
    return sources, skipped


def multi_digit_jobs(sources: Sequence[Source], max_events: int, seed: int) -> list[NoisyJob]:
    """One job per recording: it, plus 0 to ``max_events - 1`` recordings of other digits
    from the same split (no recording crosses splits), in the order they are kept."""
    pools: dict[str, dict[str, list[Source]]] = defaultdict(lambda: defaultdict(list))
    for source in sources:
        pools[source.split][source.labels[0]].append(source)
    jobs = []
    for anchor in sources:
        rng = clip_rng(seed, anchor.id, stream=1)
        pool = pools[anchor.split]
        others = sorted(digit for digit in pool if digit != anchor.labels[0])
        count = min(int(rng.integers(1, max_events + 1)) - 1, len(others))
        digits = [str(digit) for digit in rng.choice(others, size=count, replace=False)]
        partners = [pool[digit][int(rng.integers(len(pool[digit])))] for digit in digits]
        jobs.append(NoisyJob(anchor.id, anchor.split, (anchor, *partners)))
    return jobs


def prepare_noisy_digits(
    fsdd: Path,
    noise: Path,
    out: Path,
    length: float,
    snr_db: tuple[float, float] = DEFAULT_SNR_DB,
    seed: int = 0,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    multi_label: bool = False,
    max_events: int = 3,
    speakers: Collection[str] | None = None,
    strict: bool = False,
    num_jobs: int = 1,
) -> Manifest:
    """Materialise noisy-digit clips as wavs under ``out/audio`` and write the manifest.

    ``multi_label``: each clip holds 1 to ``max_events`` different digits at
    non-overlapping times (fewer when they do not fit in ``length``); labels are the
    digits present, events their spans. ``speakers`` keeps only those FSDD speakers.
    """
    if max_events < 1:
        raise ValueError(f"max_events must be at least 1, got {max_events}")
    sources, misnamed = fsdd_sources(Path(fsdd), speakers)
    usable, bad = probe_sources(sources, "fsdd")
    good = [source for source, _ in usable]
    if multi_label:
        jobs = multi_digit_jobs(good, max_events, seed)
    else:
        jobs = [NoisyJob(source.id, source.split, (source,)) for source in good]
    spec = NoisySpec(GENERATOR, float(length), tuple(snr_db), sample_rate, seed)
    return noisy_dataset(
        Path(out),
        jobs,
        Path(noise),
        spec,
        LabelSet(DIGITS, multi_label),
        [*misnamed, *bad],
        strict,
        num_jobs,
    )
