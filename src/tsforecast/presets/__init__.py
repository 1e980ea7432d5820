"""Shipped params.yaml presets: ``tsforecast init --preset NAME`` writes one as the repo's params.yaml.

``taylor`` is the default (the repo's own params.yaml, byte for byte): one half-hourly series.
``m4-hourly`` is the 414 M4 hourly series as one panel on the M4 protocol, registered under its
own ``register.model_name`` so that its versions never compete with the default model's.
A switch is undone by writing the other preset back; ``init`` refuses to overwrite a params.yaml
that is no shipped preset (edits of the user's own) unless ``force``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from tsforecast.errors import ConfigError
from tsforecast.io import atomic_file

SUFFIX = ".yaml"
DEFAULT_PRESET = "taylor"


def names() -> list[str]:
    """The shipped presets, sorted."""
    files = resources.files(__name__).iterdir()
    return sorted(f.name.removesuffix(SUFFIX) for f in files if f.name.endswith(SUFFIX))


def preset_text(name: str) -> str:
    """The params.yaml text of preset ``name``; an unknown name lists the presets."""
    if name not in names():
        raise ConfigError(f"--preset {name!r} is not a shipped preset; presets are {names()}")
    return resources.files(__name__).joinpath(name + SUFFIX).read_text(encoding="utf-8")


def describe(name: str) -> str:
    """One line: the preset's data and registered model."""
    raw = yaml.safe_load(preset_text(name))
    data, model = raw["data"], raw["register"]["model_name"]
    kind = f"a panel by {data['id_column']!r}" if data.get("id_column") else "one series"
    return f"{name}: data.path {data['path']} ({kind}), register.model_name {model}"


@dataclass(frozen=True)
class InitResult:
    """What ``tsforecast init`` did."""

    preset: str
    params: str  # the file written
    model_name: str
    data_path: str
    changed: bool  # False: params.yaml held this preset already
    undo: str  # the command that goes back


def _which_preset(text: str) -> str | None:
    return next((n for n in names() if preset_text(n) == text), None)


def write_preset(name: str, params: Path, force: bool = False) -> InitResult:
    """Write preset ``name`` to ``params``; refuse to overwrite edits of the user's own unless ``force``."""
    from tsforecast.config import config_from_dict

    text = preset_text(name)
    cfg = config_from_dict(yaml.safe_load(text), f"preset {name}")  # a shipped preset always loads
    before = params.read_text(encoding="utf-8") if params.is_file() else None
    previous = _which_preset(before) if before is not None else None
    if before is not None and previous is None and not force:
        raise ConfigError(
            f"{params} holds edits of its own (it is no shipped preset: {names()}); keep them first "
            f"(`git commit params.yaml` or `cp params.yaml params.mine.yaml`), or pass --force to "
            f"overwrite it with the {name} preset"
        )
    if before != text:
        with atomic_file(params) as fh:
            fh.write(text)
    if previous is not None and previous != name:
        undo = f"tsforecast init --preset {previous}"
    elif before is not None and previous is None:  # forced over edits of the user's own
        undo = "git checkout params.yaml (the committed file; uncommitted edits are gone)"
    elif name != DEFAULT_PRESET:
        undo = f"tsforecast init --preset {DEFAULT_PRESET}"
    else:
        undo = "nothing to undo: this is the default preset"
    return InitResult(
        preset=name,
        params=str(params),
        model_name=cfg.register.model_name,
        data_path=cfg.data.path,
        changed=before != text,
        undo=undo,
    )


__all__ = ["DEFAULT_PRESET", "InitResult", "describe", "names", "preset_text", "write_preset"]
