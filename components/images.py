"""The container images the components run in: the one place their names and tags are set.

The Makefile reads them too: it runs this file and turns each ``NAME=value`` line it prints into a
make variable, so no name here may be one the Makefile uses for something else (its ``REGISTRY``
is the model registry folder; hence ``IMAGE_REGISTRY``). Never reuse a tag: KFP's cache key uses
the image name, not its digest.
"""

IMAGE_REGISTRY = "localhost:5001/mlops-suite"
TAG = "0.4.0"
PIPELINE_IMAGE = f"{IMAGE_REGISTRY}/pipeline:{TAG}"
# The train step's image when the pipeline is compiled with GPUs: TensorFlow's GPU base.
PIPELINE_GPU_IMAGE = f"{IMAGE_REGISTRY}/pipeline-gpu:{TAG}"
SERVING_IMAGE = f"{IMAGE_REGISTRY}/serving:{TAG}"
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
