"""A versioned model registry in TensorFlow Serving's layout.

``<root>/<model-name>/<version>/saved_model.pb``, integer versions counting up from 1, and
:data:`~components.constants.REGISTRY_METADATA_FILE` beside each model. A version is written
aside under a dot-named folder (which TensorFlow Serving ignores) and renamed into place, so a
reader sees a whole model or none. Evaluate reads its baseline here; deploy writes here.
"""

import json
import logging
import os
import re
import shutil
import tempfile
from typing import Any

from components import constants
from components.errors import ConfigurationError

logger = logging.getLogger(__name__)

# A DNS-1035 label: usable as a folder, a Kubernetes object name and a KServe model name.
_MODEL_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_model_name(name: str) -> str:
    """Returns ``name`` if it can name a model everywhere it goes.

    Raises:
        ConfigurationError: It is not a lowercase DNS-1035 label.
    """
    if not _MODEL_NAME.match(name):
        raise ConfigurationError(
            f"Model name {name!r} is not valid: use lowercase letters, digits and '-', "
            "starting with a letter (at most 63 characters), e.g. 'penguins'."
        )
    return name


class ModelRegistry:
    """Models by name and version under one local folder."""

    def __init__(self, root: str) -> None:
        if "://" in root:
            raise ConfigurationError(
                f"Registry {root!r}: this deploy target writes to a local folder; give a path."
            )
        self.root = os.path.abspath(os.path.expanduser(root))

    def versions(self, name: str) -> list[int]:
        """The complete versions of a model, oldest first."""
        folder = os.path.join(self.root, check_model_name(name))
        if not os.path.isdir(folder):
            return []
        return sorted(
            int(entry)
            for entry in os.listdir(folder)
            if entry.isdigit() and os.path.isfile(os.path.join(folder, entry, "saved_model.pb"))
        )

    def latest(self, name: str) -> int | None:
        """The newest version of a model, or None when it has none."""
        versions = self.versions(name)
        return versions[-1] if versions else None

    def path(self, name: str, version: int) -> str:
        """The folder of one version."""
        return os.path.join(self.root, check_model_name(name), str(version))

    def metadata(self, name: str, version: int) -> dict[str, Any]:
        """The metadata written beside a version."""
        with open(os.path.join(self.path(name, version), constants.REGISTRY_METADATA_FILE)) as f:
            return json.load(f)

    def push(
        self,
        name: str,
        model_dir: str,
        metadata: dict[str, Any],
        extra_files: dict[str, str] | None = None,
    ) -> int:
        """Copies a SavedModel in as the next version, atomically.

        Args:
            name: The model's name.
            model_dir: A SavedModel folder.
            metadata: Written as JSON beside the model.
            extra_files: File name to text, written beside the model (e.g. the schema).

        Returns:
            The new version number.
        """
        if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
            raise ConfigurationError(f"{model_dir!r} is not a SavedModel (no saved_model.pb).")
        folder = os.path.join(self.root, check_model_name(name))
        os.makedirs(folder, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".staging-", dir=folder)
        try:
            shutil.copytree(model_dir, staging, dirs_exist_ok=True)
            with open(os.path.join(staging, constants.REGISTRY_METADATA_FILE), "w") as f:
                json.dump(metadata, f, indent=2, sort_keys=True)
            for file_name, text in (extra_files or {}).items():
                with open(os.path.join(staging, file_name), "w") as f:
                    f.write(text)
            version = (self.latest(name) or 0) + 1
            while True:
                try:
                    os.rename(staging, os.path.join(folder, str(version)))
                    break
                except OSError:
                    if not os.path.exists(os.path.join(folder, str(version))):
                        raise
                    version += 1  # Another push took this version first.
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        logger.info("Pushed %s version %d to %s", name, version, self.path(name, version))
        return version
