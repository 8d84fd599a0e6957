"""Evaluation: tasks as data (real hub datasets and offline counterparts), metrics, the runner.

    python -m eval.run --assistant text-mini,cascade-mini --suite all

`eval.tasks` registers every task by name; `eval.run` answers them through the assistant
interface (batched, cached in SQLite) and writes `results/eval/`. `--protocol paper` runs the
paper's own evaluation protocol instead (eval.paper_tasks, eval.paper_run; results/paper_protocol/);
`eval.released` reads the paper's released per-item outputs into the same results schema.
"""
