"""Pipelines composed of the components, and the ``mlops`` command line."""
