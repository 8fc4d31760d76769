"""Reporting: console tables, run and sweep figures, and sweep tables (``gelora-table``)."""
