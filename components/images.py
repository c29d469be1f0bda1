"""The container images the components run in: the one place their names and tags are set.

The Makefile reads these assignments too (with sed), so keep each on one line as
``NAME = "value"``. Never reuse a tag: KFP's cache key uses the image name, not its digest.
"""

REGISTRY = "localhost:5001/mlops-suite"
TAG = "0.1.0"
PIPELINE_IMAGE = f"{REGISTRY}/pipeline:{TAG}"
# The train step's image when the pipeline is compiled with GPUs: TensorFlow's GPU base.
PIPELINE_GPU_IMAGE = f"{REGISTRY}/pipeline-gpu:{TAG}"
SERVING_IMAGE = f"{REGISTRY}/serving:{TAG}"
# Base images, one per variant (images/*/Dockerfile take them as ARG BASE_IMAGE).
CPU_BASE_IMAGE = "python:3.11.7-slim-bookworm"
GPU_BASE_IMAGE = "tensorflow/tensorflow:2.16.2-gpu"


def as_make_variables() -> str:
    """``NAME=value`` lines of every image setting, for the Makefile."""
    return "\n".join(
        f"{name}={value}" for name, value in sorted(globals().items()) if name.isupper()
    )


if __name__ == "__main__":
    print(as_make_variables())
