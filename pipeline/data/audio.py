"""Audio I/O: every clip enters tkd here, as mono float32 at one sample rate.

Read with soundfile (torchaudio.load needs torchcodec), downmix to mono, resample with
torchaudio. Anything unusable raises :class:`AudioError` naming the file.

Documented handling: stereo and multichannel files are averaged to mono; other sample
rates are resampled; silence is accepted as it is. Refused: a missing, empty or
undecodable file, one with no samples, NaN or infinite samples, and a file cut short
(its header promises more audio than it holds, e.g. an interrupted copy: libsndfile would
otherwise quietly return the part that is there).
"""

from __future__ import annotations

import io
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as AF

from pipeline.errors import AudioError

DEFAULT_SAMPLE_RATE = 16_000
# libsndfile's header log says "<chunk> : <declared> (should be <actual>)" when a chunk's
# declared length disagrees with the file. A declared length beyond the file means bytes are
# missing, except for the placeholders streaming writers put in (ffmpeg, sox).
_CHUNK_LENGTH = re.compile(r"^\s*(\S[^:\n]*?)\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)
_STREAMING_LENGTHS = {0xFFFFFFFF, 0x7FFFF000}
_DECODE_ERRORS = (soundfile.SoundFileError, RuntimeError, TypeError, ValueError, OSError)


def load_audio(path: str | Path, sample_rate: int = DEFAULT_SAMPLE_RATE) -> torch.Tensor:
    """Return the file as a mono float32 tensor [samples] at ``sample_rate``.

    Stereo is averaged to mono and other rates are resampled (documented handling);
    a missing, empty, unreadable or non-finite file raises :class:`AudioError`.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "audio file does not exist")
    if path.stat().st_size == 0:
        raise AudioError(path, "audio file is empty (0 bytes)")
    try:
        with soundfile.SoundFile(path) as file:
            truncated = truncation_problem(file.extra_info)
            if truncated:
                raise AudioError(path, truncated)
            native_rate = file.samplerate
            samples = file.read(dtype="float32", always_2d=True)
    except _DECODE_ERRORS as error:
        raise AudioError(path, f"cannot be decoded as audio ({_first_line(error)})") from None
    if samples.shape[0] == 0:
        raise AudioError(path, "holds no samples")
    if not np.isfinite(samples).all():
        raise AudioError(path, "holds NaN or infinite samples")
    wave = torch.from_numpy(samples.mean(axis=1))
    return resample(wave, native_rate, sample_rate)


def truncation_problem(header_log: str) -> str | None:
    """Why a file is shorter than its header says, from libsndfile's header log; or None."""
    for chunk, declared, actual in _CHUNK_LENGTH.findall(header_log):
        if int(declared) > int(actual) and int(declared) not in _STREAMING_LENGTHS:
            return (
                f"truncated: its header declares {declared} bytes of {chunk.strip()!r}, "
                f"the file holds {actual} (an interrupted copy?)"
            )
    return None


def resample(wave: torch.Tensor, source_rate: int, target_rate: int) -> torch.Tensor:
    if source_rate == target_rate:
        return wave
    return AF.resample(wave, source_rate, target_rate)


def save_audio(path: str | Path, wave: torch.Tensor | np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM WAV, clipping to [-1, 1] rather than wrapping around.

    Encoded in memory, then written in one go: libsndfile's own close flushes each file
    to disk, which made dataset preparation several times slower.
    """
    samples = wave.numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    buffer = io.BytesIO()
    soundfile.write(
        buffer, np.clip(samples, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16"
    )
    Path(path).write_bytes(buffer.getvalue())


def fit_length(wave: torch.Tensor, length: int, policy: str = "pad-end") -> torch.Tensor:
    """Pad with zeros or crop to exactly ``length`` samples.

    ``pad-end`` keeps the start of the clip (crops the end, pads after);
    ``center`` keeps the middle (crops or pads both sides equally).
    """
    missing = length - wave.shape[-1]
    if missing == 0:
        return wave
    if policy == "pad-end":
        return torch.nn.functional.pad(wave, (0, missing)) if missing > 0 else wave[..., :length]
    if policy == "center":
        if missing > 0:
            return torch.nn.functional.pad(wave, (missing // 2, missing - missing // 2))
        start = -missing // 2
        return wave[..., start : start + length]
    raise ValueError(f"unknown pad/crop policy {policy!r}; use 'pad-end' or 'center'")


def mix_at_snr(
    event: torch.Tensor, noise: torch.Tensor, offset: int, snr_db: float
) -> torch.Tensor:
    """Add ``event`` into ``noise`` at sample ``offset``, scaling the noise so that the
    event-to-noise power ratio over the event's span is ``snr_db``; peak-normalise if
    the sum would clip."""
    span = slice(offset, offset + event.shape[-1])
    event_power = event.pow(2).mean().clamp_min(1e-10)
    noise_power = noise[span].pow(2).mean().clamp_min(1e-10)
    scale = torch.sqrt(event_power / (noise_power * 10 ** (snr_db / 10)))
    mixed = noise * scale
    mixed[span] += event
    peak = mixed.abs().max()
    return mixed / peak * 0.95 if peak > 0.95 else mixed


@lru_cache(maxsize=4096)
def cached_audio(path: str, sample_rate: int) -> torch.Tensor:
    """Memoised :func:`load_audio` for sources re-read many times (noise beds, remixing).

    Sized to hold every source of a keyword-spotting set (4,096 one-second clips are about
    260 MB), so re-mixing at every step does not decode and resample the same files again.
    """
    return load_audio(path, sample_rate)


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
