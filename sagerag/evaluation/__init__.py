"""`sagerag eval`: measure retrieval, answers, abstention and latency of chain configurations side by side.

`metrics` holds the pure metric functions, `runner` runs configurations over labelled questions with
resume, `report` renders tables, JSON and CSV, and `plot` draws the comparison chart (matplotlib, lazily).
"""

from sagerag.evaluation.runner import EvalConfig, EvalQuestion, label_questions, run_eval, summarize

__all__ = ["EvalConfig", "EvalQuestion", "label_questions", "run_eval", "summarize"]
