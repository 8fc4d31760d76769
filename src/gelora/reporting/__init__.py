"""Reporting: what a run itself prints and draws (console tables, the ID profile and rank plan
figures). Sweep tables are ``gelora-table``'s own package, ``gelora.table``."""
