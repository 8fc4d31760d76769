"""Write docs/leaderboard.md from the first arena's committed records (issue 46).

    PYTHONPATH=src python experiments/leaderboard_page.py

The page is ``gelora.table.leaderboard``'s rendering of ``experiments/results/arena_cpu/`` with the
title and note below; ``tests/test_leaderboard.py`` checks that the committed page equals it.
"""

from __future__ import annotations

from pathlib import Path

from gelora.atomic import write_text_atomic
from gelora.table.leaderboard import entries, render

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path("experiments/results/arena_cpu")
PAGE = Path("docs/leaderboard.md")
TITLE = "Leaderboard"
NOTE = (
    "**The third arena (`arena_cpu3`) has not run yet**: its protocol is committed before any run "
    "([arena_cpu3/README.md](results/arena_cpu3/README.md)); this page will gain its rows from "
    "its records. Below, the first arena (issue 30; [arena_cpu/README.md]"
    "(results/arena_cpu/README.md)): all-MiniLM-L6-v2 at uniform rank 2's budget, four tasks, "
    "five training seeds, every allocator against uniform LoRA (`lora`) and against its own "
    "shuffle (`gelora_budget`'s shuffle is `shuffled`), at the task's chosen rate of "
    "`gelora_budget`. `gelora_budget`'s and `lora`'s runs are the first CPU table's "
    "(`table_cpu`), which recorded no commit."
)


def page(repo: Path = REPO) -> str:
    """The page's text from the records under ``repo``."""
    return render(entries(repo / RESULTS, repo), "lora", TITLE, NOTE)


if __name__ == "__main__":
    write_text_atomic(REPO / PAGE, page())
