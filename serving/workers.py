"""HTTP worker processes (``--workers N``) that come up on a busy machine, or stop the server
saying why.

kserve 0.15.2 supervises its HTTP workers with a copy of uvicorn 0.30's ``Multiprocess``
(``kserve/protocol/rest/multiprocess/server.py`` in .venv-serving; uvicorn's is
``uvicorn/supervisors/multiprocess.py:37-42, 162-179``). Every 0.5 s the parent sends each worker
a ping and blocks up to 5 s for the pong (``server.py:48-52`` ``ping``, ``:83-87`` ``is_alive``,
``:168-170``); a worker that does not answer is SIGKILLed and replaced, logged only as
"Child process [N] died" (``:178-192``). A worker answers from a thread it starts once its target
runs (``:74``), but the worker is a *spawned* interpreter (``:45``) whose target is unpickled
first, and unpickling it imports kserve and TensorFlow and loads the model
(``ServedModel.__setstate__``). Measured on a 2-core machine: 6-12 s idle, 25-30 s with both
cores busy. So with the cores busy each worker was killed before it could ever answer, again and
again, and the server never became ready.

:class:`WorkerSupervisor` keeps kserve's worker processes and their ping, and changes what the
parent does with it:

- a worker that has not answered yet is starting, and has ``start_seconds`` to answer;
- a worker that dies or stops answering is logged with the reason (its exit status, or the
  unanswered ping) before it is replaced;
- a worker that cannot start stops the server with that reason (:class:`WorkerStartError`),
  instead of being replaced forever;
- the parent never blocks on a pong: kserve's 5 s wait runs inside the event loop that also
  serves gRPC.
"""

import asyncio
import functools
import logging
import signal
import time
from collections.abc import Callable
from socket import socket
from typing import Any

import kserve
from kserve import model_server
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess, RESTServerProcess

logger = logging.getLogger(__name__)

# kserve's own pace and liveness timeout (multiprocess/server.py:169 and :83), kept for workers
# that have started.
CHECK_SECONDS = 0.5
PING_SECONDS = 5.0


class WorkerStartError(RuntimeError):
    """An HTTP worker process could not start; the message says why."""


def exit_reason(exitcode: int) -> str:
    """How a process ended, from ``multiprocessing``'s exit code (``-N`` for signal N)."""
    if exitcode >= 0:
        return f"exited with code {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    if name == "SIGKILL":
        name += " (the kernel's out-of-memory killer sends it too)"
    return f"was killed by {name}"


class _Worker(RESTServerProcess):
    """kserve's worker process, with a ping the parent does not wait on.

    ``RESTServerProcess.ping`` sends a new ping on each call and blocks for the pong; here one
    ping is outstanding at a time and the parent only looks whether the pong has come. The child
    side (the thread that answers, ``target``) is kserve's, unchanged.
    """

    def __init__(
        self, sockets: list[socket], target: Callable[..., Any], log_config_file: str | None
    ) -> None:
        super().__init__(sockets, target, log_config_file=log_config_file)
        self.spawned_at = 0.0
        self.started = False
        self._ping_sent_at: float | None = None

    def start(self) -> None:
        super().start()
        self.spawned_at = time.monotonic()
        self.send_ping()

    @property
    def exitcode(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return self._process.exitcode

    def send_ping(self) -> None:
        """Asks for a pong, unless a ping is already waiting for one."""
        if self._ping_sent_at is None:
            self._parent_conn.send(b"ping")
            self._ping_sent_at = time.monotonic()

    def answered(self) -> bool:
        """Whether the pong to the outstanding ping has arrived (taking it)."""
        if self._ping_sent_at is None or not self._parent_conn.poll(0):
            return False
        self._parent_conn.recv()
        self._ping_sent_at = None
        return True

    def waited(self) -> float:
        """Seconds the outstanding ping has waited for its pong."""
        return 0.0 if self._ping_sent_at is None else time.monotonic() - self._ping_sent_at


class WorkerSupervisor(RESTServerMultiProcess):
    """kserve's multi-process REST server with a start-up allowance and reasons for deaths.

    Constructed by ``kserve.ModelServer.start`` with kserve's arguments (see :class:`ModelServer`),
    plus ``start_seconds``.

    Raises:
        WorkerStartError: From :meth:`start`, when a worker dies or does not answer before it
            has started; the other workers are stopped first.
    """

    def __init__(self, *args: Any, start_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start_seconds = start_seconds
        self.failure: str | None = None
        self._processes: list[_Worker] = []

    async def start(self) -> None:
        """Starts the workers and looks after them until the server stops."""
        config = self._rest_server.config
        sockets = [config.bind_socket()]
        logger.info(
            "Starting %s HTTP worker processes; each has %g s to start (--worker-start-seconds)",
            config.workers,
            self.start_seconds,
        )
        self._processes = [self._spawn(sockets) for _ in range(config.workers)]
        while not self.should_exit.is_set():
            await asyncio.sleep(CHECK_SECONDS)
            await self._look_after(sockets)
        await self.terminate_all()
        if self.failure:
            raise WorkerStartError(self.failure)

    def _spawn(self, sockets: list[socket]) -> _Worker:
        # kserve's own replacement drops the log config file (multiprocess/server.py:186-189).
        worker = _Worker(sockets, self._rest_server.run, self.log_config_file)
        worker.start()
        logger.info("Started HTTP worker [%s]", worker.pid)
        return worker

    async def _look_after(self, sockets: list[socket]) -> None:
        for index, worker in enumerate(self._processes):
            if not self.should_exit.is_set() and await self._gone(worker):
                self._processes[index] = self._spawn(sockets)

    async def _gone(self, worker: _Worker) -> bool:
        """Looks at one worker; True when it has died or hung after starting, logged why."""
        if worker.exitcode is not None:
            reason = exit_reason(worker.exitcode)
            if not worker.started:
                self._fail(
                    f"HTTP worker [{worker.pid}] {reason} while starting (importing kserve "
                    "and TensorFlow, loading the model); its log is above"
                )
                return False
            logger.error("HTTP worker [%s] %s; starting another", worker.pid, reason)
            return True
        if worker.answered():
            if not worker.started:
                worker.started = True
                logger.info(
                    "HTTP worker [%s] started in %.1f s",
                    worker.pid,
                    time.monotonic() - worker.spawned_at,
                )
            worker.send_ping()
            return False
        if not worker.started:
            if time.monotonic() - worker.spawned_at > self.start_seconds:
                self._fail(
                    f"HTTP worker [{worker.pid}] did not start in {self.start_seconds:g} s "
                    "(importing kserve and TensorFlow, loading the model); the machine is short "
                    "of CPU or memory: give it more, or raise --worker-start-seconds"
                )
            return False
        if worker.waited() <= PING_SECONDS:
            return False
        worker.kill()
        await worker.wait_for_termination()
        logger.error(
            "HTTP worker [%s] did not answer a liveness ping in %g s; killed it, starting another",
            worker.pid,
            PING_SECONDS,
        )
        return True

    def _fail(self, reason: str) -> None:
        logger.error("%s; stopping the server", reason)
        self.failure = reason
        self.should_exit.set()


class ModelServer(kserve.ModelServer):
    """``kserve.ModelServer`` whose HTTP workers run under :class:`WorkerSupervisor`.

    Args:
        worker_start_seconds: How long each HTTP worker may take to start.
        **kwargs: ``kserve.ModelServer``'s arguments.
    """

    def __init__(self, *, worker_start_seconds: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.worker_start_seconds = worker_start_seconds

    def start(self, models: list[kserve.Model]) -> None:
        """Serves ``models`` until stopped.

        Raises:
            WorkerStartError: An HTTP worker could not start.
        """
        # kserve 0.15.2 has no setting for its supervisor or its timeouts: start() builds it
        # from the module-level name RESTServerMultiProcess (kserve/model_server.py:41, :307).
        model_server.RESTServerMultiProcess = functools.partial(
            WorkerSupervisor, start_seconds=self.worker_start_seconds
        )
        super().start(models)

    async def _serve(self) -> None:
        try:
            await super()._serve()
        except WorkerStartError:
            # Stop the gRPC server too, or it is torn down with the event loop and says so.
            if self._grpc_server is not None:
                await self._grpc_server.stop()
            raise
