"""The pipeline's stages, in order: the one table the CLI, the Prefect flows and the tests read.

Each stage is a function ``run_<stage>(<section>: <SectionConfig>, ..., paths: Paths)``
whose parameter names are the params.yaml sections it reads. dvc.yaml's ``params:`` for the
stage lists exactly its *result* sections (or keys inside them): every one but the execution
sections (:data:`EXECUTION_SECTIONS`: where the work runs, not what it computes), which are in
no stage's ``params:`` and which the environment may override (:mod:`tsforecast.parallel`).
Each entry names its function in an import statement an editor can follow (dvc.yaml's
``tsforecast <stage>`` -> this table -> the function: one hop); the import runs only when the
stage runs, so ``tsforecast --help`` stays fast.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tsforecast.config import Config
    from tsforecast.paths import Paths

#: Parameters of a stage function that are not config sections.
PATHS_PARAM = "paths"
#: Sections that say where work runs (a Dask scheduler, a work pool), never what a stage computes.
EXECUTION_SECTIONS: frozenset[str] = frozenset({"orchestration"})


@dataclass(frozen=True)
class StageSpec:
    """One pipeline stage: its name (CLI subcommand and dvc.yaml stage), help line and function."""

    name: str
    help: str
    load: Callable[[], Callable[..., Any]]  # imports and returns the stage function

    def function(self) -> Callable[..., Any]:
        """The stage function (imports its module)."""
        return self.load()

    @property
    def target(self) -> str:
        """``module:function`` of the stage function, for messages."""
        f = self.function()
        return f"{f.__module__}:{f.__name__}"

    def sections(self) -> tuple[str, ...]:
        """The params.yaml sections the function reads: its parameter names, less ``paths``."""
        names = inspect.signature(self.function()).parameters
        return tuple(n for n in names if n != PATHS_PARAM)

    def result_sections(self) -> tuple[str, ...]:
        """The sections that change what the stage writes: dvc.yaml's ``params:`` for it."""
        return tuple(n for n in self.sections() if n not in EXECUTION_SECTIONS)

    def run(self, cfg: Config, paths: Paths) -> Any:
        """Call the function with the sections of ``cfg`` its signature names, and ``paths``.

        Execution sections come with the environment's overrides applied (``TSFORECAST_DASK_ADDRESS``).
        """
        kwargs: dict[str, Any] = {}
        for name in self.sections():
            if name == "orchestration":
                from tsforecast.parallel import resolve_orchestration

                kwargs[name] = resolve_orchestration(cfg.orchestration)
            elif name in type(cfg).model_fields:
                kwargs[name] = getattr(cfg, name)
            else:
                raise TypeError(
                    f"{self.target}: parameter '{name}' is not a params.yaml section; "
                    f"sections are {list(type(cfg).model_fields)}"
                )
        return self.function()(**kwargs, paths=paths)


def _ingest() -> Callable[..., Any]:
    from tsforecast.data.ingest import run_ingest

    return run_ingest


def _validate() -> Callable[..., Any]:
    from tsforecast.data.validate import run_validate

    return run_validate


def _window() -> Callable[..., Any]:
    from tsforecast.dataset.window import run_window

    return run_window


def _train() -> Callable[..., Any]:
    from tsforecast.training.train import run_train

    return run_train


def _evaluate() -> Callable[..., Any]:
    from tsforecast.evaluation.evaluate import run_evaluate

    return run_evaluate


def _backtest() -> Callable[..., Any]:
    from tsforecast.evaluation.backtest import run_backtest

    return run_backtest


def _register() -> Callable[..., Any]:
    from tsforecast.registry.register import run_register

    return run_register


def _forecast() -> Callable[..., Any]:
    from tsforecast.forecasting.forecast import run_forecast

    return run_forecast


STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "ingest",
        "read data.path (builtin:taylor, builtin:m4-hourly, a CSV or Parquet file) into data/raw/",
        _ingest,
    ),
    StageSpec(
        "validate",
        "check data/raw/ with a Great Expectations suite, fill short gaps -> data/validated/",
        _validate,
    ),
    StageSpec("window", "split chronologically, fit the scalers on train rows -> data/prepared/", _window),
    StageSpec(
        "train", "train the LSTM with early stopping and checkpoints -> models/, metrics/train.json", _train
    ),
    StageSpec(
        "evaluate", "score the model and naive baselines on the test windows -> metrics/, plots/", _evaluate
    ),
    StageSpec(
        "backtest",
        "forecast from backtest.n_cutoffs test origins (no refit), score each -> metrics/backtest.json",
        _backtest,
    ),
    StageSpec(
        "register", "log the run to MLflow, register a version, move the champion alias if it wins", _register
    ),
    StageSpec(
        "forecast",
        "forecast the horizon after the validated data with intervals -> forecasts/, plots/future.png",
        _forecast,
    ),
)

#: Stage names in pipeline order.
NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)


def get(name: str) -> StageSpec:
    """The stage called ``name``; an unknown name is an error that lists the stages."""
    for spec in STAGES:
        if spec.name == name:
            return spec
    raise KeyError(f"no stage '{name}'; stages are {list(NAMES)}")


def run_stage(name: str, cfg: Config, paths: Paths) -> Any:
    """Run one stage in-process, as its CLI subcommand does."""
    return get(name).run(cfg, paths)


__all__ = ["EXECUTION_SECTIONS", "NAMES", "STAGES", "StageSpec", "get", "run_stage"]
