"""Noisy spoken digits: FSDD recordings placed at random times inside L seconds of
background noise, in the style of "Noisy Speech Commands v2". The digit is short and
its position varies, so a model has to find *when* it is spoken.

Splits are speaker-disjoint by default, as in Noisy Speech Commands v2: a model is
tested on voices it never heard. Either name them (``test_speakers``, optionally
``valid_speakers``) or take fold ``fold`` of a speaker k-fold (``folds``): speakers are
sorted and dealt round-robin into ``folds`` groups, and fold k's speakers are test.

Valid, unless ``valid_speakers`` names its own voices, is the recordings with index 0-4
of the remaining (training) speakers: 10 % of their recordings. Why not a held-out
speaker: FSDD has only five or six voices, and giving one more to valid would cut the
voices a student learns from by a quarter; valid only picks checkpoints and λ, while the
test speakers stay unseen, so the test score stays honest (valid scores are in-speaker,
hence optimistic). The default is fold 0 of 5 (one test speaker of the five in
``shared/data``).

``split_by="recording"`` keeps the FSDD convention for comparison: index 0-4 of every
digit/speaker is test, 5-9 valid, 10-49 train (every speaker in every split).

Noise is split too: each split draws from its own time region of every noise file (see
:mod:`pipeline.data.recipes.noisy`), so no noise sample is shared across splits.

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
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.data.audio import DEFAULT_SAMPLE_RATE
from pipeline.data.manifest import LabelSet, Manifest
from pipeline.data.recipes.common import Skipped, Source, clip_rng, probe_sources, require_dir
from pipeline.data.recipes.noisy import NoisyJob, NoisySpec, noisy_dataset, remix
from pipeline.errors import ManifestError

GENERATOR = "noisy-digits"
DIGITS = tuple(str(digit) for digit in range(10))
DEFAULT_SNR_DB = (-5.0, 5.0)
FSDD_NAME = re.compile(r"(?P<digit>\d)_(?P<speaker>[^_]+)_(?P<index>\d+)")

# Same clip, fresh offsets, noise excerpt and SNR: the teacher's on-the-fly augmentation.
remix_noisy_digits = remix


SPLIT_BY = ("speaker", "recording")
DEFAULT_FOLDS = 5
HELD_OUT_INDICES = 5  # recordings 0-4 of a speaker/digit: FSDD's own held-out part


def fsdd_split(index: int) -> str:
    """FSDD convention: 0-4 test; valid carved from train as 5-9; 10-49 train."""
    return "test" if index < HELD_OUT_INDICES else "valid" if index < 10 else "train"


@dataclass(frozen=True)
class SpeakerSplit:
    """Which voices are test and (optionally) valid; every other voice trains, with its
    recordings 0-4 held out as valid when no valid voices are named."""

    test: frozenset[str]
    valid: frozenset[str] = frozenset()

    def __call__(self, speaker: str, index: int) -> str:
        if speaker in self.test:
            return "test"
        if self.valid:
            return "valid" if speaker in self.valid else "train"
        return "valid" if index < HELD_OUT_INDICES else "train"


def speaker_folds(speakers: Collection[str], fold: int, folds: int) -> SpeakerSplit:
    """Fold ``fold`` of a speaker k-fold: sorted speakers dealt round-robin into ``folds``
    groups, so the folds are fixed by the speaker names alone."""
    ordered = sorted(speakers)
    if len(ordered) < 2:
        raise ValueError(f"a speaker split needs 2+ speakers, got {ordered}: split by recording")
    if not 2 <= folds <= len(ordered):
        raise ValueError(f"folds must be 2 to {len(ordered)} (the speakers), got {folds}")
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be 0 to {folds - 1}, got {fold}")
    return SpeakerSplit(frozenset(ordered[fold::folds]))


def named_speakers(
    speakers: Collection[str], test: Collection[str], valid: Collection[str]
) -> SpeakerSplit:
    """Test (and valid) voices named by the user, checked against the recordings."""
    test, valid = frozenset(test), frozenset(valid)
    unknown = sorted((test | valid) - set(speakers))
    if unknown:
        raise ValueError(f"unknown speaker(s) {unknown}; the recordings have {sorted(speakers)}")
    if test & valid:
        raise ValueError(f"speaker(s) {sorted(test & valid)} cannot be both test and valid")
    if not set(speakers) - test - valid:
        raise ValueError("no speaker is left to train on")
    return SpeakerSplit(test, valid)


def fsdd_sources(
    fsdd: Path, speakers: Collection[str] | None = None
) -> tuple[list[tuple[Source, int]], list[Skipped]]:
    """FSDD recordings as (source, index) pairs, split not yet assigned; ``fsdd`` is the
    repository or its ``recordings/``.

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
            source = Source(path.stem, path, (name["digit"],), "", name["speaker"])
            sources.append((source, int(name["index"])))
    if not sources:
        wanted = f" of speaker(s) {sorted(speakers)}" if speakers is not None else ""
        raise ManifestError(folder, f"holds no FSDD recordings{wanted}")
    return sources, skipped


def split_rule(
    speakers: Collection[str],
    split_by: str,
    test_speakers: Collection[str] | None,
    valid_speakers: Collection[str] | None,
    fold: int | None,
    folds: int | None,
) -> Callable[[str, int], str]:
    """The (speaker, index) -> split rule the options ask for; conflicting options fail."""
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by must be one of {', '.join(SPLIT_BY)}, got {split_by!r}")
    named = test_speakers is not None or valid_speakers is not None
    if split_by == "recording":
        if named or fold is not None or folds is not None:
            raise ValueError("speaker or fold options need split_by='speaker'")
        return lambda speaker, index: fsdd_split(index)
    if named and (fold is not None or folds is not None):
        raise ValueError("give test/valid speakers or fold/folds, not both")
    if named:
        if not test_speakers:
            raise ValueError("valid speakers need test speakers too")
        return named_speakers(speakers, test_speakers, valid_speakers or ())
    return speaker_folds(speakers, fold or 0, folds or min(DEFAULT_FOLDS, len(set(speakers))))


def multi_digit_jobs(sources: Sequence[Source], max_events: int, seed: int) -> list[NoisyJob]:
    """One job per recording: it, plus 0 to ``max_events - 1`` recordings of other digits
    by the same speaker in the same split (one voice per clip; no recording crosses
    splits), in the order they are kept."""
    pools: dict[tuple, dict[str, list[Source]]] = defaultdict(lambda: defaultdict(list))
    for source in sources:
        pools[source.split, source.speaker][source.labels[0]].append(source)
    jobs = []
    for anchor in sources:
        rng = clip_rng(seed, anchor.id, stream=1)
        pool = pools[anchor.split, anchor.speaker]
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
    split_by: str = "speaker",
    test_speakers: Collection[str] | None = None,
    valid_speakers: Collection[str] | None = None,
    fold: int | None = None,
    folds: int | None = None,
) -> Manifest:
    """Materialise noisy-digit clips as wavs under ``out/audio`` and write the manifest.

    ``multi_label``: each clip holds 1 to ``max_events`` different digits of one speaker
    at non-overlapping times (fewer when they do not fit in ``length``); labels are the
    digits present, events their spans. ``speakers`` keeps only those FSDD speakers;
    the split options are described in the module docstring.
    """
    if max_events < 1:
        raise ValueError(f"max_events must be at least 1, got {max_events}")
    indexed, misnamed = fsdd_sources(Path(fsdd), speakers)
    rule = split_rule(
        {source.speaker for source, _ in indexed},
        split_by,
        test_speakers,
        valid_speakers,
        fold,
        folds,
    )
    sources = [replace(source, split=rule(source.speaker, index)) for source, index in indexed]
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
