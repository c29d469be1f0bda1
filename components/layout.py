"""TensorFlow Serving's version layout: ``<model folder>/<version>/saved_model.pb``.

A model folder holds one folder per version, named by its integer number; a model server serves
the highest. Nothing else in the folder is a version: TensorFlow Serving skips names starting
with ``.`` and names that are not numbers, so the registry writes a push under a dot-named
staging folder and renames it into place (:mod:`components.registry`).

The registry (on a local disk or an object store), the predictor and ``mlops-serve``'s choice of
the model pushed last all read versions with these rules. Plain Python: the serving environment
has no pyarrow.
"""

import os

SAVED_MODEL_FILE = "saved_model.pb"


def version_number(name: str) -> int | None:
    """The version a folder called ``name`` holds, or None when ``name`` is not a version.

    Only ASCII digits name a version (``str.isdigit`` alone also takes ``"²"``, which ``int``
    refuses); staging folders (``.staging-*``), ``_served`` and files are not versions.
    """
    return int(name) if name.isascii() and name.isdigit() else None


def is_complete(version_folder: str) -> bool:
    """Whether a version folder on a local disk holds a whole version: its SavedModel graph.

    On a local disk a version appears whole, renamed from its staging folder; a folder without
    the graph is a discarded version (its tombstone) or not written by the registry.
    """
    return os.path.isfile(os.path.join(version_folder, SAVED_MODEL_FILE))


def versions(model_folder: str) -> list[int]:
    """The complete versions in a model folder on a local disk, oldest first.

    Returns:
        The version numbers; empty when the folder does not exist.
    """
    try:
        names = os.listdir(model_folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(
        version
        for name in names
        if (version := version_number(name)) is not None
        and is_complete(os.path.join(model_folder, name))
    )
