"""Tasks, tokenisation with word alignment, and length-bucketed batching."""

from jaxrobust.data.tasks import SPLITS, Example, Splits, Task, get_task

__all__ = ["SPLITS", "Example", "Splits", "Task", "get_task"]
