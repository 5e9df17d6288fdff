"""Speech Commands (v0.02 layout): one folder per word, ``validation_list.txt`` and
``testing_list.txt`` naming the valid and test files (``word/file.wav``); everything
else is train (the lists are speaker-disjoint; the speaker, the hash before
``_nohash_``, is kept in every line). ``_background_noise_`` (and any folder starting
with ``_``) is not a class.

Without ``noise`` the manifest references the 1 s recordings by absolute path. With
``noise`` and ``length`` it materialises a noisy variant exactly as noisy digits does
(same mixer, same per-clip determinism): each word at a random offset inside
``length`` seconds of noise at an SNR drawn from ``snr_db``.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.audio import DEFAULT_SAMPLE_RATE
from pipeline.data.manifest import LabelSet, Manifest
from pipeline.data.recipes.common import (
    Source,
    probe_sources,
    reference_dataset,
    require_dir,
    require_file,
)
from pipeline.data.recipes.noisy import NoisyJob, NoisySpec, noisy_dataset
from pipeline.data.recipes.noisy_digits import DEFAULT_SNR_DB
from pipeline.errors import ManifestError

GENERATOR = "noisy-speech-commands"
SPLIT_LISTS = {"valid": "validation_list.txt", "test": "testing_list.txt"}


def speech_commands_sources(root: Path) -> tuple[list[Source], tuple[str, ...]]:
    """Every recording with its word and split, and the sorted word list."""
    require_dir(root, "Speech Commands")
    listed: dict[str, str] = {}
    for split, name in SPLIT_LISTS.items():
        text = require_file(root / name, "split list").read_text(encoding="utf-8")
        listed.update((line.strip(), split) for line in text.splitlines() if line.strip())
    words = tuple(
        sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    )
    if not words:
        raise ManifestError(root, "holds no word folders")
    sources = [
        Source(
            f"{word}_{path.stem}",
            path,
            (word,),
            listed.get(f"{word}/{path.name}", "train"),
            path.stem.split("_nohash_")[0],  # the dataset's speaker hash
        )
        for word in words
        for path in sorted((root / word).glob("*.wav"))
    ]
    return sources, words


def prepare_speech_commands(
    root: Path,
    out: Path,
    noise: Path | None = None,
    length: float | None = None,
    snr_db: tuple[float, float] = DEFAULT_SNR_DB,
    seed: int = 0,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    strict: bool = False,
    num_jobs: int = 1,
) -> Manifest:
    """Write the Speech Commands manifest; clip ids are ``{word}_{file stem}``.

    ``noise`` and ``length`` go together: give both for the noisy variant (e.g. the
    dataset's own ``_background_noise_`` folder), neither for the plain one.
    """
    root, out = Path(root), Path(out)
    if (noise is None) != (length is None):
        raise ValueError("give both noise and length for the noisy variant, or neither")
    sources, words = speech_commands_sources(root)
    labels = LabelSet(words)
    if noise is None:
        return reference_dataset(out, sources, labels, strict, "speech commands")
    usable, skipped = probe_sources(sources, "speech commands")
    jobs = [NoisyJob(source.id, source.split, (source,)) for source, _ in usable]
    spec = NoisySpec(GENERATOR, float(length), tuple(snr_db), sample_rate, seed)
    return noisy_dataset(out, jobs, Path(noise), spec, labels, skipped, strict, num_jobs)
