"""Evaluation (issue #24): assertions, comparison statistics and the promptfoo config importer.
Pure code; the runner that executes runs through the gateway lives in ``services/eval_runner.py``."""
