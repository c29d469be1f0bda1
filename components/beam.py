"""A data step's work as an Apache Beam pipeline, chosen by Beam pipeline options (TFX's
``beam_pipeline_args``): ingest, validate, transform's fitting and evaluate each have one
implementation whose units of work run in this process, or, given options, on a Beam runner's
workers (Dataflow, Flink, Spark; here the DirectRunner, in several processes), with the same
results.

A step cuts its input into units (row ranges of a Parquet split, row groups of a source), maps
each with a function of its own (``fn``) and either combines the results with a combiner of
Beam's ``CombineFn`` methods or gathers them in the units' order. The options are checked
before any work starts: an unknown option, an unknown runner or an option the runner rejects
(Dataflow without a project, say) is a :class:`ConfigurationError`.

Light to import (Beam is imported when a pipeline runs), for the CLI.
"""

import contextlib
import io
import logging
import os
import pickle
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from components.errors import ConfigurationError
from components.settings import setting

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeamConfig:
    """Where the data steps run."""

    beam_pipeline_args: list[str] = setting(
        [],
        "Apache Beam pipeline options for the data steps (ingest, validate, transform's "
        "fitting, evaluate), e.g. --runner=DirectRunner --direct_running_mode=multi_processing "
        "(Dataflow, Flink and Spark options too); none: in-process, in record batches",
        show="none",
    )


def pipeline_options(args: Sequence[str]) -> Any:
    """Beam ``PipelineOptions`` of ``args``, checked as the runner would check them.

    Raises:
        ConfigurationError: An option Beam does not know, a runner it does not know, a value
            out of an option's choices, or options the runner rejects.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
    from apache_beam.runners.runner import create_runner

    options = PipelineOptions(list(args))
    usage = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage):  # argparse's complaint, for the message
            every = options.get_all_options(retain_unknown_options=True)
            unknown = sorted(set(every) - set(options.get_all_options()))
    except SystemExit:
        problem = usage.getvalue().strip().splitlines()[-1:] or ["invalid option value"]
        raise ConfigurationError(f"Bad Beam pipeline options: {problem[0]}") from None
    if unknown:
        raise ConfigurationError(
            f"Beam does not know the pipeline options {', '.join('--' + u for u in unknown)} "
            f"(given {' '.join(args)}): check the spelling against the options of the "
            "installed Beam (apache-beam 2.60.0)."
        )
    name = options.view_as(StandardOptions).runner or "DirectRunner"
    try:
        runner = create_runner(name)
    except ValueError as err:
        raise ConfigurationError(f"Bad Beam pipeline option --runner: {err}") from None
    errors = PipelineOptionsValidator(options, runner).validate()
    if errors:
        raise ConfigurationError(
            f"The Beam runner {name} rejects the pipeline options ({' '.join(args)}): "
            + "; ".join(errors)
        )
    if not _workers_are_local(options, runner) and not _temp_location(options):
        raise ConfigurationError(
            f"The Beam runner {name} runs its workers elsewhere, and they hand results back "
            "through files: give --temp_location=<a gs://, s3:// or shared folder that they and "
            "this step both reach>."
        )
    return options


def _workers_are_local(options: Any, runner: Any) -> bool:
    """Whether the runner's workers run on this machine: the DirectRunner's (in this process or
    in processes it starts), or a portable runner's in the LOOPBACK environment."""
    from apache_beam.options.pipeline_options import PortableOptions
    from apache_beam.runners.direct.direct_runner import (
        BundleBasedDirectRunner,
        SwitchingDirectRunner,
    )

    if isinstance(runner, SwitchingDirectRunner | BundleBasedDirectRunner):
        return True
    return options.view_as(PortableOptions).environment_type == "LOOPBACK"


@contextlib.contextmanager
def scratch(args: Sequence[str]) -> Iterator[str]:
    """A folder for files that this process and a pipeline's workers share (a result, sorted
    runs of scores), removed with what is in it afterwards: under the runner's
    ``--temp_location`` when given (a remote runner's workers reach it), else a local folder
    (in-process, or workers on this machine)."""
    with _scratch(pipeline_options(args) if args else None) as folder:
        yield folder


@contextlib.contextmanager
def _scratch(options: Any) -> Iterator[str]:
    """:func:`scratch` for checked pipeline options (None: in-process)."""
    base = _temp_location(options) if options else None
    if not base:
        folder = tempfile.mkdtemp(prefix="mlops-")
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    from apache_beam.io.filesystems import FileSystems

    # The file systems' options (an object store's endpoint, its credentials), which Beam sets
    # only when a pipeline is made (apache-beam 2.60.0 apache_beam/pipeline.py:188).
    FileSystems.set_options(options)
    folder = FileSystems.join(base, f"mlops-{uuid.uuid4().hex}")
    if "://" not in folder:
        os.makedirs(folder)  # open_path opens local files with open()
    try:
        yield folder
    finally:
        _remove(folder)


def _remove(folder: str) -> None:
    """Removes a scratch folder under ``--temp_location``; a failure is a warning, not an error
    that would hide the step's own outcome."""
    from apache_beam.io.filesystems import FileSystems

    try:
        found = FileSystems.match([FileSystems.join(folder, "*")])[0].metadata_list
        if found:
            FileSystems.delete([entry.path for entry in found])
        if "://" not in folder:
            shutil.rmtree(folder, ignore_errors=True)
    except Exception as err:  # whatever the file system raises
        logger.warning("Could not remove the scratch folder %s: %s", folder, err)


def _temp_location(options: Any) -> str | None:
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    return options.view_as(GoogleCloudOptions).temp_location


def open_path(path: str, mode: str = "rb") -> Any:
    """A file in a :func:`scratch` folder, opened to read (``rb``) or written whole (``wb``):
    a local file, or through Beam's file systems for a URL (gs://, s3://)."""
    if "://" not in path:
        return open(path, mode)
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    if mode == "wb":
        return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _write_result(result: Any, path: str) -> None:
    with open_path(path, "wb") as handle:
        handle.write(pickle.dumps(result))


def _combine_fn(combiner: Any) -> Any:
    """``combiner`` (``create_accumulator``, ``merge_accumulators``, ``extract_output``; each
    element an accumulator) as a ``beam.CombineFn``."""
    import apache_beam as beam

    class Combine(beam.CombineFn):
        def create_accumulator(self) -> Any:
            return combiner.create_accumulator()

        def add_input(self, accumulator: Any, element: Any) -> Any:
            return combiner.merge_accumulators([accumulator, element])

        def merge_accumulators(self, accumulators: Any) -> Any:
            return combiner.merge_accumulators(accumulators)

        def extract_output(self, accumulator: Any) -> Any:
            return combiner.extract_output(accumulator)

    return Combine()


def run(
    units: Sequence[Any],
    fn: Callable[[Any], Any],
    args: Sequence[str],
    combiner: Any = None,
) -> Any:
    """Maps ``fn`` over ``units`` as a Beam pipeline run with options ``args``.

    Args:
        units: Small descriptions of the work (row ranges, file names), picklable.
        fn: What each unit gives; runs on the workers.
        args: Beam pipeline options.
        combiner: Merges what the units give (``create_accumulator``,
            ``merge_accumulators``, ``extract_output``; each unit's result is an accumulator).
            None: the results, in the order of ``units``.

    Returns:
        The combined result, or the list of results.

    Raises:
        ConfigurationError: ``args`` are not options the runner takes (before any work).
    """
    import apache_beam as beam

    options = pipeline_options(args)
    with _scratch(options) as folder:
        path = f"{folder}/result.pickle"
        with beam.Pipeline(options=options) as pipeline:
            results = (
                pipeline
                | "Units" >> beam.Create(list(enumerate(units)))
                | "Spread" >> beam.Reshuffle()
                | "Work" >> beam.Map(lambda unit: (unit[0], fn(unit[1])))
            )
            if combiner is not None:
                gathered = (
                    results
                    | "Results" >> beam.Values()
                    | "Combine" >> beam.CombineGlobally(_combine_fn(combiner))
                )
            else:
                gathered = (
                    results
                    | "Gather" >> beam.combiners.ToList()
                    | "InOrder" >> beam.Map(lambda pairs: [r for _, r in sorted(pairs, key=_first)])
                )
            _ = gathered | "Write" >> beam.Map(_write_result, path)
        with open_path(path) as handle:
            return pickle.loads(handle.read())


def _first(pair: tuple[int, Any]) -> int:
    return pair[0]
