"""Kubeflow Pipelines components: ingest, validate, transform, train, resolve_baseline, evaluate,
deploy, rollout.

Each component lives in its own folder: ``core.py`` does the work in plain Python and never
imports ``kfp``; ``component.py`` is the thin KFP wrapper around it.
"""
