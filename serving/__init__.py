"""The KServe predictor for models the training pipeline exports.

Runs in the serving environment (``requirements/serving.lock``, ``.venv-serving``), apart from
the pipeline environment: kserve 0.15 needs pandas >= 2.2, which TFDV forbids.
"""
