"""A versioned model registry in TensorFlow Serving's layout, on a local disk or an object store.

``<root>/<model-name>/<version>/saved_model.pb``, integer versions counting up from 1, with
:data:`~components.constants.REGISTRY_METADATA_FILE` beside each model. ``root`` is a local path
or a URI pyarrow opens (``s3://bucket/prefix?endpoint_override=host:port&scheme=http``,
``gs://bucket/prefix``, ``file:///path``), so evaluate finds its baseline the same way locally and
on a cluster.

A reader sees a whole version or none: on a local disk a version is written under a dot-named
folder (which TensorFlow Serving ignores) and renamed into place; an object store has no rename,
so the metadata file is written last and a version counts only once it is there.
"""

import json
import logging
import os
import re
import shutil
import tempfile
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pa_fs

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
    """Models by name and version under one root folder or URI."""

    def __init__(self, root: str) -> None:
        self.is_local = "://" not in root
        if self.is_local:
            self.fs: pa_fs.FileSystem = pa_fs.LocalFileSystem()
            self.root = os.path.abspath(os.path.expanduser(root))
            self._uri_root = self.root
        else:
            try:
                self.fs, self.root = pa_fs.FileSystem.from_uri(root)
            except (ValueError, OSError) as err:
                raise ConfigurationError(f"Cannot open the registry {root!r}: {err}") from err
            parts = urlsplit(root)
            # What other readers (KServe's storage initializer) take: no pyarrow options.
            self._uri_root = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")

    def _folder(self, name: str) -> str:
        return f"{self.root}/{check_model_name(name)}"

    def _exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pa_fs.FileType.NotFound

    def versions(self, name: str) -> list[int]:
        """The complete versions of a model, oldest first."""
        selector = pa_fs.FileSelector(self._folder(name), allow_not_found=True)
        complete = "saved_model.pb" if self.is_local else constants.REGISTRY_METADATA_FILE
        return sorted(
            int(info.base_name)
            for info in self.fs.get_file_info(selector)
            if info.type == pa_fs.FileType.Directory
            and info.base_name.isdigit()
            and self._exists(f"{info.path}/{complete}")
        )

    def latest(self, name: str) -> int | None:
        """The newest version of a model, or None when it has none."""
        versions = self.versions(name)
        return versions[-1] if versions else None

    def model_uri(self, name: str) -> str:
        """Where a model's versions are: a local folder or a URI (``s3://bucket/prefix/name``)."""
        return f"{self._uri_root}/{check_model_name(name)}"

    def path(self, name: str, version: int) -> str:
        """Where one version is: a local folder, or a URI (``s3://bucket/prefix/name/3``)."""
        return f"{self.model_uri(name)}/{version}"

    def metadata(self, name: str, version: int) -> dict[str, Any]:
        """The metadata written beside a version."""
        location = f"{self._folder(name)}/{version}/{constants.REGISTRY_METADATA_FILE}"
        with self.fs.open_input_stream(location) as stream:
            return json.loads(stream.read())

    def local_copy(self, name: str, version: int, scratch: str) -> str:
        """A local folder holding the version, for TensorFlow to load; copies from an object
        store into ``scratch``."""
        if self.is_local:
            return self.path(name, version)
        target = os.path.join(scratch, f"{name}-{version}")
        pa_fs.copy_files(
            f"{self._folder(name)}/{version}",
            target,
            source_filesystem=self.fs,
            destination_filesystem=pa_fs.LocalFileSystem(),
        )
        return target

    def push(
        self,
        name: str,
        model_dir: str,
        metadata: dict[str, Any],
        extra_files: dict[str, str] | None = None,
    ) -> int:
        """Copies a SavedModel in as the next version, whole or not at all.

        Args:
            name: The model's name.
            model_dir: A local SavedModel folder.
            metadata: Written as JSON beside the model.
            extra_files: File name to text, written beside the model (e.g. the schema).

        Returns:
            The new version number.
        """
        if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
            raise ConfigurationError(f"{model_dir!r} is not a SavedModel (no saved_model.pb).")
        files = {**(extra_files or {}), constants.REGISTRY_METADATA_FILE: _json(metadata)}
        if self.is_local:
            version = self._push_local(name, model_dir, files)
        else:
            version = self._push_remote(name, model_dir, files)
        logger.info("Pushed %s version %d to %s", name, version, self.path(name, version))
        return version

    def discard(self, name: str, version: int) -> None:
        """Removes a version that must not be served (its metadata first, so it stops counting)."""
        folder = f"{self._folder(name)}/{version}"
        if not self.is_local:
            self.fs.delete_file(f"{folder}/{constants.REGISTRY_METADATA_FILE}")
        self.fs.delete_dir(folder)
        logger.info("Discarded %s version %d", name, version)

    def _push_local(self, name: str, model_dir: str, files: dict[str, str]) -> int:
        folder = self._folder(name)
        os.makedirs(folder, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".staging-", dir=folder)
        try:
            shutil.copytree(model_dir, staging, dirs_exist_ok=True)
            for file_name, text in files.items():
                with open(os.path.join(staging, file_name), "w") as f:
                    f.write(text)
            version = (self.latest(name) or 0) + 1
            while True:
                try:
                    os.rename(staging, os.path.join(folder, str(version)))
                    return version
                except OSError:
                    if not os.path.exists(os.path.join(folder, str(version))):
                        raise
                    version += 1  # Another push took this version first.
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _push_remote(self, name: str, model_dir: str, files: dict[str, str]) -> int:
        # Versions without the metadata file are unfinished pushes; never reuse their numbers.
        folder = self._folder(name)
        taken = [
            int(info.base_name)
            for info in self.fs.get_file_info(pa_fs.FileSelector(folder, allow_not_found=True))
            if info.base_name.isdigit()
        ]
        version = max(taken, default=0) + 1
        target = f"{folder}/{version}"
        pa_fs.copy_files(model_dir, target, destination_filesystem=self.fs)
        for file_name, text in sorted(
            files.items(), key=lambda item: item[0] == constants.REGISTRY_METADATA_FILE
        ):
            with self.fs.open_output_stream(f"{target}/{file_name}") as stream:
                stream.write(text.encode())
        return version


def _json(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, indent=2, sort_keys=True)
