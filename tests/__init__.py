"""Test suite; a package so that test modules can import shared helpers (tests.helpers.mlflow_fixtures)."""
