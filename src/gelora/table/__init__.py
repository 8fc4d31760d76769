"""``gelora-table``: sweep folders -> paper-style tables, paired comparisons with a reference
row, learning rates chosen on validation, sizing, plan stability and placement effects.

An application of its own: it reads run records (``gelora.record``) and run folders, and
imports nothing of the training stack (models, LoRA, methods, training, stages), so a table
is made without torch or Lightning (``tests/test_import_graph.py``)."""
