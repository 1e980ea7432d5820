"""Typed, frozen configuration read once from params.yaml.

Every section is a pydantic model with ``extra="forbid"``: a typo such as
``window.horizn`` fails at load time naming the key and the allowed keys, and a
value of the wrong type or range fails naming the key, the value and what is expected.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tsforecast.errors import ConfigError, format_validation_error

BUILTIN_TAYLOR = "builtin:taylor"
BUILTIN_M4_HOURLY = "builtin:m4-hourly"
DASK_SCHEMES = ("tcp://", "tls://")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """pydantic reads ``true`` as 1 for an int field; a YAML boolean there is a mistake."""
        if isinstance(v, bool) and info.field_name is not None:
            ann = cls.model_fields[info.field_name].annotation
            allowed = ann is bool or (get_origin(ann) is Literal and v in get_args(ann))
            if not allowed:
                raise ValueError(f"expected {_expected(ann)}, got the boolean {str(v).lower()}")
        return v


def _expected(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return "a number" if text in {"int", "float"} or "int" in text.lower() else f"a value of type {text}"


class DataConfig(_Section):
    """Where the series comes from and which columns matter."""

    path: str = BUILTIN_TAYLOR
    timestamp_column: str = "timestamp"
    target: str = "demand"
    # the series id of a long file holding many series (a panel); None: the file is one series
    id_column: str | None = None
    covariates: tuple[str, ...] = ()
    freq: str = "auto"
    fill_gaps: NonNegativeInt = 2

    @field_validator("freq")
    @classmethod
    def _freq_is_offset(cls, v: str) -> str:
        if v == "auto":
            return v
        try:
            pd.tseries.frequencies.to_offset(v)
        except ValueError as e:
            raise ValueError(
                f"'{v}' is not a pandas offset; use 'auto' or an alias such as '30min', 'h', 'D'"
            ) from e
        return v

    @model_validator(mode="after")
    def _columns_distinct(self) -> DataConfig:
        ids = [] if self.id_column is None else [self.id_column]
        names = [*ids, self.timestamp_column, self.target, *self.covariates]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(
                f"columns {dup} are named more than once across id_column, timestamp_column, target "
                "and covariates; each column has one role"
            )
        if self.id_column is not None and not self.id_column.strip():
            raise ValueError("id_column='' is not a column name; name the series id column or use null")
        return self


class SplitConfig(_Section):
    """Chronological split: all fractions (sum <= 1), all integer row counts, or all ``auto``.

    ``auto`` (the default) is settled by :meth:`resolved` once the number of series is known:
    one series gets fractions 0.7 / 0.1 / 0.2 (many test windows, the long-horizon literature's
    protocol); many series get row counts anchored at each series' end, val and test one horizon
    each and train every row before val (the M4 protocol: each series' newest rows are held out,
    the rest trains).
    """

    train: float | int | Literal["auto"] = "auto"
    val: float | int | Literal["auto"] = "auto"
    test: float | int | Literal["auto"] = "auto"
    lookback: Literal["auto", True, False] = "auto"
    # row counts: where they are counted from in each series. start: train = the first `train`
    # rows (the long-horizon literature's protocol); end: test = the last `test` rows, val the
    # `val` before, train every row before val (the M4 protocol). auto: start for one series,
    # end for many (fractions always count from the start)
    anchor: Literal["auto", "start", "end"] = "auto"

    @field_validator("train", "val", "test", mode="before")
    @classmethod
    def _positive_number(cls, v: Any) -> Any:
        if v == "auto":
            return v
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"{v!r} must be a fraction in (0, 1) or a positive row count (or auto)")
        if v <= 0:
            raise ValueError(f"{v!r} must be a fraction in (0, 1) or a positive row count")
        if isinstance(v, float) and v >= 1:
            if v.is_integer():
                raise ValueError(f"{v!r} is a float >= 1; write a row count as an integer ({int(v)})")
            raise ValueError(f"{v!r} must be a fraction in (0, 1) or a positive row count")
        return v

    @model_validator(mode="after")
    def _same_kind(self) -> SplitConfig:
        parts = {"train": self.train, "val": self.val, "test": self.test}
        autos = {k for k, v in parts.items() if v == "auto"}
        if autos and len(autos) < 3:
            raise ValueError(
                f"split sets {sorted(set(parts) - autos)} but leaves {sorted(autos)} auto ({parts}); "
                "set all three or none"
            )
        if autos:
            return self
        kinds = {k: isinstance(v, int) for k, v in parts.items()}
        if len(set(kinds.values())) > 1:
            raise ValueError(
                f"split mixes fractions and row counts ({parts}); use fractions for all three "
                "or integer row counts for all three"
            )
        if not kinds["train"]:
            total = self.train + self.val + self.test
            if total > 1 + 1e-9:
                raise ValueError(
                    f"split fractions train+val+test = {total:g} > 1; they must sum to at most 1"
                )
        return self

    @property
    def is_auto(self) -> bool:
        return self.train == "auto"

    def resolved(self, n_series: int, input_size: int, horizon: int) -> SplitConfig:
        """``auto`` settled for ``n_series`` series (see the class doc); a set split as it is."""
        if not self.is_auto:
            return self
        if n_series <= 1:
            return self.model_copy(update={"train": 0.7, "val": 0.1, "test": 0.2})
        return self.model_copy(update={"train": input_size + horizon, "val": horizon, "test": horizon})

    @property
    def uses_counts(self) -> bool:
        if self.is_auto:
            raise ValueError("split is auto: settle it with SplitConfig.resolved(n_series, ...) first")
        return isinstance(self.train, int)

    @property
    def inputs_look_back(self) -> bool:
        """Whether val/test windows may take their inputs from rows before their split."""
        return self.uses_counts if self.lookback == "auto" else bool(self.lookback)

    def anchor_for(self, n_series: int) -> Literal["start", "end"]:
        """Where row counts are anchored: ``anchor``, or for ``auto`` start with one series, end with many."""
        if self.anchor != "auto":
            return self.anchor
        return "end" if n_series > 1 else "start"


class WindowConfig(_Section):
    """Sliding windows: ``input_size`` steps in, ``horizon`` steps out."""

    input_size: PositiveInt = 336  # lookback L, in steps
    horizon: PositiveInt = 48  # H, steps forecast at once
    stride: PositiveInt = 1  # step between training windows


class ModelConfig(_Section):
    """Constructor arguments of :class:`tsforecast.training.model.LSTMForecaster`."""

    def resolved(self, n_series: int) -> ModelConfig:
        """``auto`` settled for ``n_series`` series (see the comments of each key)."""
        if self.window_norm != "auto":
            return self
        return self.model_copy(update={"window_norm": "last" if n_series == 1 else "mean_std"})

    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 2
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    # per-window normalisation of the input. auto: last for one series (its level moves, its scale
    # does not), mean_std for many (series differ in level and scale; M4-tuned on validation windows)
    window_norm: Literal["auto", "none", "last", "mean_std"] = "auto"
    linear_skip: bool = True
    # K members trained together, served as their median (one model); member k reads the last
    # window.input_size x (1, 1/2, 3/4, 1, ...)[k] steps and starts from its own initial weights
    ensemble: PositiveInt = 1


class TrainConfig(_Section):
    """Optimisation, early stopping, device and checkpointing."""

    def resolved(self, n_series: int) -> TrainConfig:
        """``auto`` settled for ``n_series`` series (no training key is ``auto`` today)."""
        return self

    epochs: PositiveInt = 30
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 2e-3
    weight_decay: NonNegativeFloat = 1e-4
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    # mae: the default for one series and many (robust to outliers and across series; on the
    # default data's validation-tuned run it beat mse even on the MSE-scored test: docs/results.md)
    loss: Literal["mse", "huber", "mae"] = "mae"
    patience: PositiveInt = 5
    grad_clip: NonNegativeFloat = 1.0
    seed: NonNegativeInt = 42
    device: str = "auto"
    resume: bool = True
    # CPU only: split each batch over this many threads, one core each, and sum their
    # gradients (data parallelism inside one process); auto = min(torch threads, batch_size // 16, 8)
    cpu_shards: Literal["auto"] | PositiveInt = "auto"
    # a panel (data.id_column set): an epoch is this many training windows drawn across the
    # series (so its cost does not grow with the panel); auto = 16384. One series: every window.
    windows_per_epoch: Literal["auto"] | PositiveInt = "auto"
    # a panel: draw a series uniformly, then a window in it ("series"), or every window alike
    sample_by: Literal["series", "windows"] = "series"

    @field_validator("device")
    @classmethod
    def _device_name(cls, v: str) -> str:
        ok = v in {"auto", "cpu", "cuda"} or (v.startswith("cuda:") and v[5:].isdigit())
        if not ok:
            raise ValueError(f"'{v}' is not a device; use auto, cpu, cuda or cuda:N")
        return v


class EvaluateConfig(_Section):
    """Baselines and plots."""

    # auto: from the frequency and the train rows (dataset/auto.py): hourly 24, half-hourly 48, or
    # the weekly period where the data repeats weekly (the default data: 336), daily 7, monthly 12
    seasonal_period: Literal["auto"] | PositiveInt = "auto"
    plot_windows: NonNegativeInt = 4


class RegisterConfig(_Section):
    """MLflow experiment, registered model and the champion gate."""

    model_name: str = Field("tsforecast-lstm", min_length=1)
    alias: str = Field("champion", min_length=1)
    challenger_alias: str = Field("challenger", min_length=1)
    experiment: str = Field("tsforecast", min_length=1)
    max_retries: NonNegativeInt = 4
    retry_backoff_s: NonNegativeFloat = 2.0


class ForecastConfig(_Section):
    """The ``forecast`` stage: prediction-interval levels of the published forecast."""

    levels: tuple[float, ...] = (80.0,)  # percent, each in (0, 99]; [] for the point forecast only

    @field_validator("levels", mode="before")
    @classmethod
    def _percentages(cls, v: Any) -> Any:
        values = v if isinstance(v, list | tuple) else [v]
        for x in values:
            if isinstance(x, bool) or not isinstance(x, int | float) or not 0 < x <= 99:
                raise ValueError(f"level {x!r} is not a percentage in (0, 99]; use e.g. [80] or [50, 80, 95]")
        if len(set(values)) != len(values):
            raise ValueError(f"levels {list(values)} repeat a value; list each level once")
        return v


class BacktestConfig(_Section):
    """Rolling-origin evaluation over the test period (stage ``backtest``)."""

    n_cutoffs: int = 5  # forecast origins, evenly spread over the test period

    @field_validator("n_cutoffs")
    @classmethod
    def _at_least_one(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be an integer >= 1 (the number of forecast origins in the test period)")
        return v


class MonitorConfig(_Section):
    """``tsforecast monitor``: realized accuracy of the delivered forecasts and the retrain decision.

    Retrain when (1) the realized ``mse_scaled`` pooled over the champion's last ``recent``
    scored origins stayed above the expected upper (backtest ``mse_scaled`` + ``band`` x the
    spread of its cutoffs) for ``patience`` origins in a row, (2) the newest rows drifted from
    the training rows (level, scale or seasonal profile past its threshold) in more than
    ``drift_share`` of the series, or (3) the champion's training data ended more than
    ``max_age`` before the newest row. See docs/monitoring.md.
    """

    recent: PositiveInt = 3  # origins pooled into the realized error the decision compares
    band: NonNegativeFloat = 3.0  # upper = expected mse_scaled + band x spread across backtest cutoffs
    patience: PositiveInt = 2  # origins in a row above the upper before a retrain
    # newest rows per series compared with the training rows (auto: evaluate.seasonal_period)
    drift_window: Literal["auto"] | PositiveInt = "auto"
    drift_level: PositiveFloat = 0.5  # |mean(newest - train profile)| / std(train)
    drift_scale: PositiveFloat = 0.4  # |log(spread of newest / the train rows' spread at those phases)|
    drift_profile: PositiveFloat = 0.35  # RMS of the demeaned gap to the train profile / std(train)
    drift_share: float = Field(0.1, ge=0.0, lt=1.0)  # share of drifted series tolerated (one series: none)
    max_age: str | None = "7D"  # in data time; null: age never triggers a retrain
    experiment: str = Field("tsforecast-monitor", min_length=1)  # MLflow experiment of the realized runs

    @field_validator("max_age")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            age = pd.Timedelta(v)
        except ValueError:
            age = None
        if age is None or pd.isna(age) or age <= pd.Timedelta(0):
            raise ValueError(f"'{v}' is not a positive duration; use e.g. '7D', '36h' or null")
        return v


def scheduler_address_problem(address: object) -> str | None:
    """Why ``address`` is not a Dask scheduler address (tcp://host:port), or None when it is one
    (or None: no scheduler)."""
    if address is None:
        return None
    text = str(address)
    rest = text.split("://", 1)[1] if "://" in text else ""
    host, _, port = rest.rpartition(":")
    if isinstance(address, str) and text.startswith(DASK_SCHEMES) and host and port.isdigit():
        return None
    return (
        f"{address!r} is not a scheduler address; use 'tcp://host:port' (as printed by "
        "`dask scheduler`) or null to run locally"
    )


class OrchestrationConfig(_Section):
    """Where Prefect sends the train stage, and where per-series work of a panel runs."""

    train_pool: Literal["local", "gpu"] = "local"
    # None: in-process, or a local Dask cluster when the work pays for one;
    # "tcp://host:port": the scheduler of an existing Dask cluster (`dask scheduler`)
    dask_address: str | None = None

    @field_validator("dask_address")
    @classmethod
    def _scheduler_url(cls, v: str | None) -> str | None:
        problem = scheduler_address_problem(v)
        if problem:
            raise ValueError(problem)
        return v


# ``register`` is also the name of ABCMeta.register, which pydantic warns about; the
# field still works as an attribute on instances, so the warning is silenced here only.
warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)


class Config(_Section):
    """The whole of params.yaml."""

    data: DataConfig = DataConfig()
    split: SplitConfig = SplitConfig()
    window: WindowConfig = WindowConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    register: RegisterConfig = RegisterConfig()
    forecast: ForecastConfig = ForecastConfig()
    backtest: BacktestConfig = BacktestConfig()
    orchestration: OrchestrationConfig = OrchestrationConfig()
    monitor: MonitorConfig = MonitorConfig()

    @model_validator(mode="after")
    def _cross_section(self) -> Config:
        period = self.evaluate.seasonal_period
        if period != "auto" and period > self.window.input_size:
            raise ValueError(
                f"evaluate.seasonal_period={self.evaluate.seasonal_period} exceeds "
                f"window.input_size={self.window.input_size}; the seasonal-naive baseline and the "
                "model only see the input window - raise input_size or lower the period"
            )
        return self

    def section_hash(self, *sections: str) -> str:
        """A short stable hash of the named sections (all when none are named)."""
        dump = self.model_dump(mode="json")
        keys = sections or tuple(dump)
        payload = json.dumps({k: dump[k] for k in keys}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def flat(self) -> dict[str, Any]:
        """``{"window.horizon": 48, ...}``: the flattened params, for MLflow."""
        out: dict[str, Any] = {}
        for section, values in self.model_dump(mode="json").items():
            for key, value in values.items():
                out[f"{section}.{key}"] = value
        return out


def config_from_dict(raw: dict[str, Any], source: str = "params") -> Config:
    """Build a :class:`Config`, turning pydantic's errors into one :class:`ConfigError`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, raw, source, Config)) from None


def load_config(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Config:
    """Read params.yaml once into a frozen :class:`Config`.

    ``overrides`` maps dotted keys to values (``{"train.epochs": 1}``), as in
    ``dvc exp run -S train.epochs=1``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found; run from the repo root or pass --params")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return config_from_dict(raw, str(path))
