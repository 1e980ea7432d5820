"""The errors a user can act on. The CLI prints their message on one line, no traceback.

Also how a params.yaml that does not validate reads: one line per problem (:func:`format_validation_error`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError


class TsForecastError(Exception):
    """Base class: a problem with the user's input, params or environment."""


class ConfigError(TsForecastError):
    """params.yaml holds an unknown key, a wrong type or an out-of-range value."""


class DataError(TsForecastError):
    """The input file cannot be read as a time series."""


class DataValidationError(DataError):
    """The series breaks one or more validation rules (Great Expectations)."""


class TrainingError(TsForecastError):
    """Training diverged (NaN/inf loss) or cannot run on the requested device."""


class ModelLoadError(TsForecastError):
    """A model file is missing, truncated, or not one of ours."""


class RegistryError(TsForecastError):
    """The MLflow tracking server or registry could not be reached or updated."""


class TransientError(TsForecastError):
    """A failure that a later try may get past: the registry or the network is unreachable.

    The CLI exits 75 (EX_TEMPFAIL) for it, and the Prefect flows retry on that exit code.
    """


# ---------------------------------------------------------------------------- params.yaml problems


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the section that ``loc`` (without its last part) points into."""
    current: Any = model
    for part in loc[:-1]:
        field = current.model_fields.get(str(part)) if hasattr(current, "model_fields") else None
        if field is None:
            break
        current = field.annotation
    return list(getattr(current, "model_fields", {}))


def _lookup(raw: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        if isinstance(raw, dict) and part in raw:
            raw = raw[part]
        else:
            return "<missing>"
    return raw


def _key_path(loc: tuple[Any, ...], unknown: bool, root: type[BaseModel]) -> tuple[Any, ...]:
    """The user's dotted key in pydantic's ``loc``, without its union and validator tags
    (``literal['auto']``, ``constrained-int``, ``function-after[...]``). For an unknown key the
    last part is the key itself, whatever its name."""
    parts = list(loc)
    last = parts.pop() if unknown and parts else None
    out: list[Any] = []
    current: Any = root
    for part in parts:
        fields = getattr(current, "model_fields", None)
        if fields is None or str(part) not in fields:
            continue  # a tag pydantic adds inside a field: not a key
        out.append(part)
        ann = fields[str(part)].annotation
        current = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return (*out, last) if last is not None else tuple(out)


def format_validation_error(
    err: ValidationError, raw: dict[str, Any], source: str, root: type[BaseModel]
) -> str:
    """One line per problem of validating ``raw`` as ``root``: the dotted key, the bad value, what is expected."""
    unknown_lines: list[str] = []
    invalid: dict[str, list[str]] = {}  # key=value -> what each union member expected
    for e in err.errors():
        is_unknown = e["type"] == "extra_forbidden"
        loc = _key_path(tuple(e["loc"]), is_unknown, root)
        key = ".".join(str(p) for p in loc)
        if is_unknown:
            allowed = _allowed_keys(root, loc)
            unknown_lines.append(f"{source}: unknown key '{key}'; allowed keys here are {allowed}")
            continue
        msg = e["msg"].removeprefix("Value error, ")
        head = f"{source}: {key}={_lookup(raw, loc)!r} is invalid" if key else f"{source}: invalid params"
        invalid.setdefault(head, [])
        if msg not in invalid[head]:
            invalid[head].append(msg)
    # pydantic reports one error per member of a union: one line per key, the expectations joined
    lines = unknown_lines + [f"{head}: {' or '.join(msgs)}" for head, msgs in invalid.items()]
    return "\n".join(dict.fromkeys(lines))
