"""Scoring tests use the cohort, split, model and report fixtures of ``tests/conftest.py``."""
