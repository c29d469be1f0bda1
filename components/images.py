"""The container images the components run in: the one place their names and tags are set.

The Makefile reads these assignments too (with sed), so keep each on one line as
``NAME = "value"``. Never reuse a tag: KFP's cache key uses the image name, not its digest.
"""

REGISTRY = "localhost:5001/mlops-suite"
TAG = "0.1.0"
PIPELINE_IMAGE = f"{REGISTRY}/pipeline:{TAG}"
