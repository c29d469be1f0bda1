"""Scores ranked on disk: the exact AUC and ROC curve of any number of rows in bounded memory.

An AUC needs every score of a split in order; holding them, and scikit-learn's working copies
of them, grows with the split. Instead a :class:`Ranking` keeps about :data:`RUN_ROWS` scores
in memory at most; each time it has that many it writes them as a *run*, sorted, one record
per distinct score with its count of positive and negative rows. The runs are merged, a chunk
of each at a time (:func:`merge`), into the split's distinct scores from the highest down,
and the AUC is counted in integers as they go by: the Mann-Whitney statistic, a tie counted
half, which is the trapezoidal area under scikit-learn's ROC curve, divided once and rounded
correctly. Runs are written where the workers of a Beam pipeline and this process both reach
(:func:`components.beam.scratch`).

The ROC curve is points of scikit-learn's ``roc_curve`` (``drop_intermediate``), exactly, but
at most about two per 1/:data:`CURVE_STEPS` of either axis: scikit-learn's has a point for
about every other distinct score, which would grow with the split into the metrics artifact.
"""

import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from components import beam

# One record per distinct score of a run, sorted by key = -score (negating is exact), so
# ascending keys go from the highest score down. Scores are kept as float64: a float32's value
# exactly, as scikit-learn's thresholds give it.
RECORD = np.dtype([("key", "<f8"), ("positives", "<i8"), ("negatives", "<i8")])
# Scores held before they are written as a run (9 bytes each, and the sort's working copies).
RUN_ROWS = 1 << 20
# Records of each run read at once while merging, and runs merged at once: at most
# FAN_IN * MERGE_CHUNK records (12 MiB) in memory; more runs are merged in rounds.
MERGE_CHUNK = 1 << 13
FAN_IN = 64
# Runs merged at once from a remote file system, whose readers buffer 16 MiB each (Beam 2.60.0:
# apache_beam/io/gcp/gcsio.py:56,207 DEFAULT_READ_BUFFER_SIZE; apache_beam/io/aws/s3io.py:75).
REMOTE_FAN_IN = 8
CURVE_STEPS = 1000


class Run(NamedTuple):
    """A file of records sorted by key, distinct, and the counts of its rows."""

    path: str
    records: int
    positives: int
    negatives: int


def _records(keys: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """One record per distinct key, in ascending order, with the counts of its rows summed."""
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else []
    records = np.empty(len(starts), RECORD)
    if len(keys):
        records["key"] = keys[starts]
        records["positives"] = np.add.reduceat(positives[order], starts)
        records["negatives"] = np.add.reduceat(negatives[order], starts)
    return records


def write_run(chunks: Iterable[np.ndarray], folder: str) -> Run:
    """Writes chunks of records, already in order, as one run in ``folder``."""
    path = f"{folder}/run-{uuid.uuid4().hex}.bin"
    records = positives = negatives = 0
    with beam.open_path(path, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk.tobytes())
            records += len(chunk)
            positives += int(chunk["positives"].sum())
            negatives += int(chunk["negatives"].sum())
    return Run(path, records, positives, negatives)


class _Reader:
    """A run read a chunk at a time; ``buffer`` holds the records read and not yet taken."""

    def __init__(self, run: Run, stack: ExitStack) -> None:
        self._handle = stack.enter_context(beam.open_path(run.path))
        self.left = run.records
        self.buffer = np.empty(0, RECORD)

    def refill(self) -> None:
        if not len(self.buffer) and self.left:
            count = min(MERGE_CHUNK, self.left)
            self.buffer = np.frombuffer(self._handle.read(count * RECORD.itemsize), RECORD)
            if len(self.buffer) != count:
                raise OSError(f"a run of scores ended early: {self._handle}")
            self.left -= count


def merge(runs: Iterable[Run]) -> Iterator[np.ndarray]:
    """The records of ``runs`` as one sorted run: chunks of records in ascending key order,
    each key in one record of one chunk, its counts summed over the runs."""
    with ExitStack() as stack:
        readers = [_Reader(run, stack) for run in runs]
        carried = np.empty(0, RECORD)
        while True:
            for reader in readers:
                reader.refill()
            live = [reader for reader in readers if len(reader.buffer)]
            if not live:
                break
            # A key not read yet is at least the last key read of its run: every key up to the
            # smallest such bound is here (the bound's own may go on in the next chunk).
            unread = [reader.buffer["key"][-1] for reader in live if reader.left]
            bound = min(unread) if unread else None
            taken = [carried]
            for reader in live:
                cut = (
                    len(reader.buffer)
                    if bound is None
                    else int(np.searchsorted(reader.buffer["key"], bound, side="right"))
                )
                taken.append(reader.buffer[:cut])
                reader.buffer = reader.buffer[cut:]
            joined = np.concatenate(taken)
            combined = _records(joined["key"], joined["positives"], joined["negatives"])
            if bound is None:
                carried = np.empty(0, RECORD)
                yield combined
            else:
                carried = combined[-1:]
                yield combined[:-1]
        if len(carried):
            yield carried


def _in_rounds(runs: list[Run], folder: str) -> list[Run]:
    """Few enough runs to merge at once (:data:`FAN_IN`, or :data:`REMOTE_FAN_IN` in a remote
    folder): merged a round at a time into new runs."""
    fan_in = REMOTE_FAN_IN if "://" in folder else FAN_IN
    while len(runs) > fan_in:
        runs = [*runs[fan_in:], write_run(merge(runs[:fan_in]), folder)]
    return runs


@dataclass
class Curve:
    """The ROC curve as scikit-learn's ``roc_curve`` gives it (without its point at an
    infinite threshold), thinned to steps of at least 1/:data:`CURVE_STEPS`."""

    fpr: list[float] = field(default_factory=list)
    tpr: list[float] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)


@dataclass
class Ranking:
    """Scores of rows and whether each row is positive, ranked on disk in ``folder``. The
    ``sharing`` rankings of the same rows (one per class) share :data:`RUN_ROWS` between them."""

    folder: str
    sharing: int = 1
    scores: list[np.ndarray] = field(default_factory=list)
    positive: list[np.ndarray] = field(default_factory=list)
    held: int = 0
    runs: list[Run] = field(default_factory=list)

    def add(self, scores: np.ndarray, positive: np.ndarray) -> None:
        """Adds rows: their scores (finite) and whether each is positive."""
        self.scores.append(np.asarray(scores, np.float64))
        self.positive.append(np.asarray(positive, bool))
        self.held += len(scores)
        if self.held * self.sharing >= RUN_ROWS:
            self.flush()

    def flush(self) -> None:
        """Writes the scores held as a run."""
        if not self.held:
            return
        positive = np.concatenate(self.positive).astype(np.int64)
        keys = -(np.concatenate(self.scores) + 0.0)  # + 0.0: a score of -0.0 is 0.0
        self.runs.append(write_run([_records(keys, positive, 1 - positive)], self.folder))
        self.scores, self.positive, self.held = [], [], 0

    def merge(self, other: "Ranking") -> "Ranking":
        """Adds another part's rows."""
        self.runs.extend(other.runs)
        for scores, positive in zip(other.scores, other.positive, strict=True):
            self.add(scores, positive)
        return self

    def result(self, curve: bool = False) -> tuple[Fraction, Curve | None]:
        """The AUC, exactly (needs positive and negative rows), and the ROC curve if asked."""
        self.flush()
        positives = sum(run.positives for run in self.runs)
        negatives = sum(run.negatives for run in self.runs)
        if not positives or not negatives:
            raise ValueError("the AUC needs positive and negative rows")
        twice_u = 0  # twice the Mann-Whitney U: pairs a positive ranks above, ties count 1
        above = 0  # positives at higher scores than the records at hand
        points = _CurvePoints(positives, negatives) if curve else None
        for records in merge(_in_rounds(self.runs, self.folder)):
            if not len(records):
                continue
            pos, neg = records["positives"], records["negatives"]
            higher = above + np.cumsum(pos) - pos
            twice_u += _dot(neg, 2 * higher + pos)
            above += int(pos.sum())
            if points is not None:
                points.add(records)
        auc = Fraction(twice_u, 2 * positives * negatives)
        return auc, None if points is None else points.finish()


def _dot(a: np.ndarray, b: np.ndarray) -> int:
    """The dot product of two int64 arrays, exactly (Python integers past int64's range)."""
    if not len(a) or int(a.max()) * int(b.max()) * len(a) < 1 << 62:
        return int(np.dot(a, b))
    return sum(int(x) * int(y) for x, y in zip(a.tolist(), b.tolist(), strict=True))


class _CurvePoints:
    """ROC points as the distinct scores go by, from the highest. scikit-learn keeps the first,
    the last and each whose counts differ from the next one's (``drop_intermediate``); of
    those, this keeps the last and each in a cell of the 1/:data:`CURVE_STEPS` grid other than
    the previous one's, so at most ``2 * CURVE_STEPS + 2`` of them."""

    def __init__(self, positives: int, negatives: int) -> None:
        self.positives, self.negatives = positives, negatives
        self.tail = np.empty(0, RECORD)  # the newest score: the next one decides its point
        self.tps = self.fps = 0  # the counts above the tail
        self.cell: tuple[int, int] | None = None  # of the last point kept
        self.started = False
        self.curve = Curve()

    def add(self, records: np.ndarray) -> None:
        records = np.concatenate([self.tail, records])
        if len(records) < 2:
            self.tail = records
            return
        pos, neg = records["positives"], records["negatives"]
        tps, fps = self.tps + np.cumsum(pos), self.fps + np.cumsum(neg)
        kept = (pos[:-1] != pos[1:]) | (neg[:-1] != neg[1:])
        kept[0] |= not self.started  # the first point
        self.started = True
        chosen = np.flatnonzero(kept)
        self._keep(fps[chosen], tps[chosen], -records["key"][chosen])
        self.tail, self.tps, self.fps = records[-1:], int(tps[-2]), int(fps[-2])

    def _keep(
        self, fps: np.ndarray, tps: np.ndarray, thresholds: np.ndarray, last: bool = False
    ) -> None:
        cells = np.stack([fps * CURVE_STEPS // self.negatives, tps * CURVE_STEPS // self.positives])
        before = np.concatenate([np.array(self.cell or (-1, -1)).reshape(2, 1), cells[:, :-1]], 1)
        keep = (cells != before).any(axis=0)
        if last:
            keep[-1] = True
        if keep.any():
            self.cell = tuple(int(c) for c in cells[:, np.flatnonzero(keep)[-1]])
        self.curve.fpr += (fps[keep] / self.negatives).tolist()
        self.curve.tpr += (tps[keep] / self.positives).tolist()
        self.curve.thresholds += thresholds[keep].astype(np.float64).tolist()

    def finish(self) -> Curve:
        if len(self.tail):
            pos, neg = self.tail["positives"], self.tail["negatives"]
            self._keep(self.fps + neg, self.tps + pos, -self.tail["key"], last=True)
        return self.curve
