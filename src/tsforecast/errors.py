"""The errors a user can act on. The CLI prints their message on one line, no traceback."""


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
