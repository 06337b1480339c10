"""Tasks, tokenisation with word alignment, and length-bucketed batching."""

from jaxrobust.data.tasks import SPLITS, Example, Splits, Task, file_task, get_task

__all__ = ["SPLITS", "Example", "Splits", "Task", "file_task", "get_task"]
