"""A versioned model registry in TensorFlow Serving's layout, on a local disk or an object store.

``<root>/<model-name>/<version>/saved_model.pb``, integer versions counting up from 1, with
:data:`~components.constants.REGISTRY_METADATA_FILE` beside each model. ``root`` is a local path
or a URI pyarrow opens (``s3://bucket/prefix?endpoint_override=host:port&scheme=http``,
``gs://bucket/prefix``, ``file:///path``), so evaluate finds its baseline the same way locally and
on a cluster.

A reader sees a whole version or none: on a local disk a version is written under a dot-named
folder (which TensorFlow Serving ignores) and renamed into place; an object store has no rename,
so the metadata file is written last and a version counts only once it is there. Two pushes to
an object store never take the same number: each claims it first (:meth:`ModelRegistry._claim`).

Served folders, ``<root>/_served/<model-name>/<version>/<version>/``, hold one version each, in
the layout a model server reads from ``/mnt/models``; the rollout step points an
InferenceService at one (:meth:`ModelRegistry.publish`). ``_`` cannot start a model name, so the
folder never collides with a model's.
"""

import json
import logging
import os
import random
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pa_fs

from components import constants, layout
from components.errors import ConfigurationError

logger = logging.getLogger(__name__)

# A DNS-1035 label: usable as a folder, a Kubernetes object name and a KServe model name; at
# most 48 characters because KServe 0.15.2 labels the predictor pods app=isvc.<name>-predictor
# (reconcilers/deployment/deployment_reconciler.go:142-149, constants.go:538-540) and a label
# value holds at most 63.
MAX_MODEL_NAME = 48
_MODEL_NAME = re.compile(rf"^[a-z]([-a-z0-9]{{0,{MAX_MODEL_NAME - 2}}}[a-z0-9])?$")
# Beside the model folders; not a DNS-1035 label, so no model can be called that.
SERVED_FOLDER = "_served"
# Beside a served folder once its rollout succeeded: ``_served/<model>/<version>.served``.
SERVED_MARKER_SUFFIX = ".served"
# Left in the folder of a discarded version.
DISCARDED_MARKER = ".discarded"
# A push's claim on a version number, inside that version's folder (see ModelRegistry._claim).
CLAIM_PREFIX = ".claim-"


def check_model_name(name: str) -> str:
    """Returns ``name`` if it can name a model everywhere it goes.

    Raises:
        ConfigurationError: It is not a lowercase DNS-1035 label.
    """
    if not _MODEL_NAME.match(name):
        raise ConfigurationError(
            f"Model name {name!r} is not valid: use lowercase letters, digits and '-', "
            f"starting with a letter (at most {MAX_MODEL_NAME} characters), e.g. 'penguins'."
        )
    return name


class VersionClaimFailed(RuntimeError):
    """Concurrent pushes kept taking the version numbers this push tried to claim."""


class ModelRegistry:
    """Models by name and version under one root folder or URI.

    Args:
        root: A local path or a URI pyarrow opens.
        claim_attempts: How many version numbers a push to an object store tries to claim
            before it gives up.
        backoff_seconds: The longest pause between two claims (random, growing per attempt).
        sleep: Waits between claims (a test's hook).
    """

    def __init__(
        self,
        root: str,
        claim_attempts: int = 10,
        backoff_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.is_local = "://" not in root
        self.claim_attempts = claim_attempts
        self.backoff_seconds = backoff_seconds
        self._sleep = sleep
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

    def _served_folder(self, name: str, version: int) -> str:
        return f"{self.root}/{SERVED_FOLDER}/{check_model_name(name)}/{version}"

    def _exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pa_fs.FileType.NotFound

    def _make_parent(self, path: str) -> None:
        # A local disk needs the folder before a file goes in; an object store has no folders
        # (and pyarrow would write marker objects for them).
        if isinstance(self.fs, pa_fs.LocalFileSystem):
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)

    def _write(self, path: str, data: bytes) -> None:
        self._make_parent(path)
        with self.fs.open_output_stream(path) as stream:
            stream.write(data)

    def versions(self, name: str) -> list[int]:
        """The complete versions of a model, oldest first (:mod:`components.layout`'s rules; in
        an object store a version is complete once its metadata file is there)."""
        if self.is_local:
            return layout.versions(self._folder(name))
        selector = pa_fs.FileSelector(self._folder(name), allow_not_found=True)
        return sorted(
            version
            for info in self.fs.get_file_info(selector)
            if info.type == pa_fs.FileType.Directory
            and (version := layout.version_number(info.base_name)) is not None
            and self._exists(f"{info.path}/{constants.REGISTRY_METADATA_FILE}")
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

    def served_uri(self, name: str, version: int) -> str:
        """The served folder of a version: ``s3://bucket/prefix/_served/name/3/``.

        It ends with ``/`` because KServe's storage initializer downloads every object whose key
        starts with the URI's path: without the slash, ``.../_served/name/3`` would also fetch
        ``.../_served/name/30/`` (kserve v0.15.2 python/kserve/kserve/storage/storage.py:242,
        ``bucket.objects.filter(Prefix=...)``, and :268, which strips the prefix and one ``/``).
        """
        return f"{self._uri_root}/{SERVED_FOLDER}/{check_model_name(name)}/{version}/"

    def metadata(self, name: str, version: int) -> dict[str, Any]:
        """The metadata written beside a version."""
        return json.loads(self.read_text(name, version, constants.REGISTRY_METADATA_FILE))

    def read_text(self, name: str, version: int, file_name: str) -> str:
        """A file written beside a version (its metadata, schema, training statistics).

        Raises:
            FileNotFoundError: The version has no such file.
        """
        with self.fs.open_input_stream(f"{self._folder(name)}/{version}/{file_name}") as stream:
            return stream.read().decode()

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

        Raises:
            ConfigurationError: ``model_dir`` is not a SavedModel.
            VersionClaimFailed: Other pushes to the object store kept taking the numbers.
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

    def publish(self, name: str, version: int) -> str:
        """Copies a complete version into its own served folder; returns :meth:`served_uri`.

        The served folder holds that version alone, as ``<version>/saved_model.pb``: the folder
        of numeric versions TensorFlow Serving and this project's predictor read from
        ``/mnt/models``. Nothing writes into it afterwards, so a rollback to the previous
        InferenceService spec finds the previous version's folder as it was served, and a later
        push (here or by the local target) never reaches a running predictor.
        """
        source = f"{self._folder(name)}/{version}"
        target = f"{self._served_folder(name, version)}/{version}"
        selector = pa_fs.FileSelector(source, recursive=True)
        for info in self.fs.get_file_info(selector):
            relative = info.path[len(source) + 1 :]
            if info.type != pa_fs.FileType.File or relative.startswith(CLAIM_PREFIX):
                continue
            self._make_parent(f"{target}/{relative}")
            self.fs.copy_file(info.path, f"{target}/{relative}")
        logger.info("Published %s version %d at %s", name, version, self.served_uri(name, version))
        return self.served_uri(name, version)

    def _served_marker(self, name: str, version: int) -> str:
        # Beside the served folder, not in it: the storage initializer downloads everything
        # under the folder's URI, which ends with "/" and so never matches "<version>.served".
        return f"{self._served_folder(name, version)}{SERVED_MARKER_SUFFIX}"

    def mark_served(self, name: str, version: int) -> None:
        """Records that a rollout of ``version`` succeeded: it has served."""
        self._write(self._served_marker(name, version), b"")

    def unmark_served(self, name: str, version: int) -> None:
        """Records that ``version`` was rolled back: it no longer counts as served, so it is
        not the baseline a later run must beat (resolve_baseline's ``served_only``)."""
        marker = self._served_marker(name, version)
        if self._exists(marker):
            self.fs.delete_file(marker)

    def served_versions(self, name: str) -> list[int]:
        """The versions of ``name`` whose rollout succeeded and whose served folder is still
        there, oldest first: on a cluster, the one an InferenceService serves and the one a
        rollback would go back to (older folders are retired). A version whose rollout is
        under way, or whose rollout step died before it finished, is not among them."""
        selector = pa_fs.FileSelector(
            f"{self.root}/{SERVED_FOLDER}/{check_model_name(name)}", allow_not_found=True
        )
        listed = {info.base_name: info.type for info in self.fs.get_file_info(selector)}
        return sorted(
            int(base)
            for base, kind in listed.items()
            if kind == pa_fs.FileType.Directory
            and base.isdigit()
            and f"{base}{SERVED_MARKER_SUFFIX}" in listed
        )

    def retire_served(self, name: str, keep: set[int]) -> list[int]:
        """Deletes the served folders of ``name`` older than the newest in ``keep``, except
        those in ``keep`` (the serving one and the one a rollback would go back to); returns
        the versions retired. Newer folders belong to rollouts under way in other runs. The
        registry's versions themselves stay."""
        selector = pa_fs.FileSelector(
            f"{self.root}/{SERVED_FOLDER}/{check_model_name(name)}", allow_not_found=True
        )
        retired = sorted(
            version
            for info in self.fs.get_file_info(selector)
            if (version := layout.version_number(info.base_name)) is not None
            and version not in keep
            and version < max(keep)
        )
        for version in retired:
            if self._exists(marker := self._served_marker(name, version)):
                self.fs.delete_file(marker)
            self.fs.delete_dir(self._served_folder(name, version))
        return retired

    def discard(self, name: str, version: int) -> None:
        """Removes a version that must not be served (its metadata first, so it stops counting)
        and its served folder."""
        folder = f"{self._folder(name)}/{version}"
        if not self.is_local:
            self.fs.delete_file(f"{folder}/{constants.REGISTRY_METADATA_FILE}")
        served = self._served_folder(name, version)
        if self._exists(served):
            self.fs.delete_dir(served)
        self.fs.delete_dir(folder)
        # A tombstone keeps the number taken (a push never reuses a folder that exists), so a
        # version number names one model forever, in logs and lineage too.
        self._write(f"{folder}/{DISCARDED_MARKER}", b"")
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
        version = self._claim(name)
        target = f"{self._folder(name)}/{version}"
        pa_fs.copy_files(model_dir, target, destination_filesystem=self.fs)
        for file_name, text in sorted(
            files.items(), key=lambda item: item[0] == constants.REGISTRY_METADATA_FILE
        ):
            self._write(f"{target}/{file_name}", text.encode())
        return version

    def _claim(self, name: str) -> int:
        """Takes a version number no other push has or will get; the claim stays in its folder.

        The protocol, for object stores whose writes are visible to every later listing (S3
        since December 2020, GCS, MinIO, a local disk):

        1. List the model's folder and take the number after the highest folder there,
           complete or not (an unfinished push's number is never reused).
        2. Write a claim object with a unique name, ``<model>/<version>/.claim-<uuid>``.
        3. List that version's folder. The claimant owns the version if the listing holds
           its own claim and nothing else. Otherwise it deletes its claim, waits a random,
           growing, bounded time and starts again at 1.

        Why at most one claimant owns a version: say A and B both did. A's listing (L_A) did
        not show B's claim, so it began before B's claim write (W_B) ended: ``start(L_A) <
        end(W_B)``; likewise ``start(L_B) < end(W_A)``. Each claimant lists after its own write:
        ``end(W_A) < start(L_A)`` and ``end(W_B) < start(L_B)``. Chained, ``end(W_A) <
        start(L_A) < end(W_B) < start(L_B) < end(W_A)``, which is impossible. B's claim could
        also have been missing because B deleted it, but B deletes its claim only when it
        loses; and a winner keeps its claim and writes the model beside it, so a later
        claimant of the same number always finds something besides its own claim.

        Returns:
            The claimed version.

        Raises:
            VersionClaimFailed: Every attempt met another claimant.
        """
        for attempt in range(self.claim_attempts):
            version = self._next_free_version(name)
            claim = self._write_claim(name, version)
            if self._owns(name, version, claim):
                return version
            self.fs.delete_file(claim)
            logger.info("Version %d of %s is claimed by another push; retrying", version, name)
            self._sleep(random.uniform(0, min(self.backoff_seconds, 0.05 * 2**attempt)))
        raise VersionClaimFailed(
            f"Could not claim a version of {name!r} in {self._uri_root} after "
            f"{self.claim_attempts} attempts: other pushes kept claiming the same numbers. "
            "Run the deploy step again once the other pushes have finished."
        )

    def _next_free_version(self, name: str) -> int:
        if isinstance(self.fs, pa_fs.LocalFileSystem):
            # pyarrow lists a missing local folder as an error when another push creates it
            # while the listing runs (allow_not_found checks again after the failed opendir).
            self.fs.create_dir(self._folder(name), recursive=True)
        selector = pa_fs.FileSelector(self._folder(name), allow_not_found=True)
        taken = [
            version
            for info in self.fs.get_file_info(selector)
            if (version := layout.version_number(info.base_name)) is not None
        ]
        return max(taken, default=0) + 1

    def _write_claim(self, name: str, version: int) -> str:
        claim = f"{self._folder(name)}/{version}/{CLAIM_PREFIX}{uuid.uuid4().hex}"
        self._write(claim, b"")
        return claim

    def _owns(self, name: str, version: int, claim: str) -> bool:
        selector = pa_fs.FileSelector(f"{self._folder(name)}/{version}", allow_not_found=True)
        listed = [info.base_name for info in self.fs.get_file_info(selector)]
        return listed == [claim.rsplit("/", 1)[1]]


def _json(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, indent=2, sort_keys=True)
