"""Tasks: labelled text, seeded splits and Lightning data modules."""

from gelora.data.task_data import Split, TaskData, stratified_subsample

__all__ = ["Split", "TaskData", "stratified_subsample"]
