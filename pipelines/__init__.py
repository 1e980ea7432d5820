"""Prefect orchestration of the tsforecast pipeline (see pipelines/README.md).

The flows hold no forecasting logic: each task runs one DVC stage with
``dvc repro --single-item <stage>``, the same entry point as ``dvc repro``, so a flow run
leaves ``dvc status`` clean. ``flows.py`` holds the flows and tasks, ``dvc_runner.py`` the
subprocess plumbing and the DVC remote hand-off, ``run_report.py`` the run's markdown report.
"""
