"""Shared test helpers: tiny real repos and data sets, one series and panels alike."""
