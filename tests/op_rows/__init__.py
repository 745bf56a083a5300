"""Rows of the op test table, one module per op family (see tests/optable.py)."""
