"""Helpers shared by the tests: small real data sets and the repos that hold them, one series and panels alike."""
