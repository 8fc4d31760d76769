"""Reporting: console tables, plots and atomically written results."""
