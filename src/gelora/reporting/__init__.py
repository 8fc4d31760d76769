"""Reporting: console tables, run and sweep figures, and sweep tables (``gelora-table``:
paired comparisons with a reference method, learning rates chosen on validation)."""
