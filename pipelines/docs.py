"""The settings tables in the component READMEs, made from the step configs.

``python -m pipelines.docs`` (``make docs``) rewrites each table between its markers; a test
fails when one is stale.
"""

import os
import sys

from components import settings
from components.beam import BeamConfig
from components.evaluate.blessing import EvalConfig
from components.ingest.config import IngestConfig
from components.rollout.core import KServeSettings
from components.train.config import TrainConfig
from components.transform.config import TransformConfig
from pipelines.cluster_training import ServeConfig
from pipelines.parameters import RunConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- settings: made from the step config; `make docs` rewrites it -->"
END = "<!-- /settings -->"
# Each component README with the configs its table is made from.
READMES = {
    "ingest": (IngestConfig, BeamConfig),
    "validate": (BeamConfig,),
    "transform": (TransformConfig, BeamConfig),
    "train": (TrainConfig,),
    "evaluate": (EvalConfig, BeamConfig),
    "rollout": (ServeConfig, KServeSettings),
}


# The `mlops run` flags table of README.md: the settings with a flag, in --help's order.
RUN_FLAGS = (
    (RunConfig, ("data_uri", "label")),
    (IngestConfig, None),
    (RunConfig, ("model_name", "registry")),
    (TransformConfig, None),
    (TrainConfig, None),
    (EvalConfig, ("min_improvement", "min_labelled_rows")),
)


# The flags whose command-line form is not a setting's (pipelines/cli.py).
OTHER_RUN_FLAGS = "".join(
    f"| {option} | {default} | {meaning} |\n"
    for option, default, meaning in (
        (
            "`--schema SCHEMA.pbtxt`",
            "inferred",
            "a curated TFDV schema to validate against (start from a run's `schema` artifact)",
        ),
        (
            "`--beam-pipeline-arg ARG`",
            "in-process",
            "a Beam pipeline option for the data steps (ingest, validate, transform's fitting, "
            "evaluate), e.g. `--beam-pipeline-arg=--runner=DirectRunner`; repeatable "
            "(Dataflow/Flink/Spark options too)",
        ),
        (
            "`--threshold METRIC>=V` / `METRIC<=V`",
            "none",
            "absolute blessing thresholds, repeatable; metrics: accuracy, auc, log_loss, "
            "macro_precision, macro_recall, rmse, mae, r2",
        ),
        ("`--runs-dir DIR`", "`./runs`", "where run folders go"),
        ("`--verbose`", "off", "show everything the steps print"),
    )
)


def run_flags_table() -> str:
    """The table of ``mlops run``'s flags: those made from step configs, then the others."""
    made = "".join(
        settings.markdown_table(config, only, flags=True, header=index == 0)
        for index, (config, only) in enumerate(RUN_FLAGS)
    )
    return made + OTHER_RUN_FLAGS


def readme_path(step: str) -> str:
    """Where a component's README is (``run``: the project's README, its flags table)."""
    if step == "run":
        return os.path.join(ROOT, "README.md")
    return os.path.join(ROOT, "components", step, "README.md")


def table(step: str) -> str:
    """The settings table of a component's README (``run``: the README's flags table)."""
    if step == "run":
        return run_flags_table()
    return "".join(settings.markdown_table(config) for config in READMES[step])


TABLES = ("run", *READMES)


def current_table(text: str) -> str | None:
    """The table between the markers of a README's text, or None without markers."""
    if BEGIN not in text or END not in text:
        return None
    return text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip("\n") + "\n"


def rewrite(step: str) -> bool:
    """Puts the made table between the markers; returns whether the README changed."""
    path = readme_path(step)
    with open(path) as handle:
        text = handle.read()
    if current_table(text) is None:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} markers to put the table between")
    before, after = text[: text.index(BEGIN) + len(BEGIN)], text[text.index(END) :]
    updated = f"{before}\n{table(step)}{after}"
    if updated != text:
        with open(path, "w") as handle:
            handle.write(updated)
    return updated != text


def main() -> int:
    """Rewrites every table; prints the READMEs it changed."""
    for step in TABLES:
        if rewrite(step):
            print(f"rewrote {os.path.relpath(readme_path(step))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
