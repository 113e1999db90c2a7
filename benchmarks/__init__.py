"""Benchmarks for jupyter-nl2sql: Spider and WikiSQL execution accuracy, latency, memory and connection time.

Entry points (each is ``python -m benchmarks.<name> --help``):

- ``benchmarks.spider`` / ``benchmarks.wikisql``: run the pipeline (or the ``--raw`` baseline) over a dev split and
  write per-question JSONL, ``summary.json``, ``summary.md`` and plots to the output directory.
- ``benchmarks.report``: rebuild the summary, table and plots of an output directory.
- ``benchmarks.compare``: state a run against a baseline run (accuracy gain, latency ratios, paired wins/losses).
- ``benchmarks.connections``: first and pooled connection time for SQLite, DuckDB and PostgreSQL.
- ``benchmarks.validate``: the scorer checked on the gold queries themselves (gold vs gold must score 100 %).
- ``benchmarks.index``: the committed records (``benchmarks/results/<benchmark>/<run>/``) and everything derived
  from them: summaries, plots, comparisons and the index ``benchmarks/results/README.md``.
- ``benchmarks.gate``: the CI regression gate's runs and machine yardstick (judged by
  ``scripts/check_performance_regression.py`` against ``benchmarks/baselines/``).

The scoring lives in :mod:`benchmarks.scoring` (Spider, test-suite-sql-eval semantics) and :mod:`benchmarks.wikisql`
(WikiSQL, dbengine semantics); the question loop shared by both runners lives in :mod:`benchmarks.runner`.
"""
