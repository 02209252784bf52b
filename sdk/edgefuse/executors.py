"""Executors run sweep jobs (:mod:`edgefuse.jobs`); one scheduler (:func:`run_jobs`) drives them all.

* ``inline``: every job in this process, one after the other (the default; what ``run_grid`` always did).
* ``process``: a pool of ``workers`` worker processes (``spawn``) on this machine. Each worker receives
  the dataset, the model source and the sweep's corrupted inputs once, at start-up, and sets torch's
  intra-op threads to ``threads`` (default ``max(1, cores // workers)``, so the workers do not
  oversubscribe the cores).
* ``ray``: each job is a ``ray.remote`` task with ``num_cpus=threads`` (default 1) and ``num_gpus`` per
  job, on a local Ray instance or the cluster at ``ray_address`` (``auto`` or ``HOST:PORT``); the dataset
  and the corrupted inputs are shipped once with ``ray.put``; ``ray.wait`` drives the progress bar. Ray is
  imported only here, and only by this executor (``pip install 'edgefuse[ray]'``).

The scheduler submits a job once every job it depends on has finished, writes nothing itself (each job
writes its own result to the job store, see :func:`edgefuse.jobs.execute`), reuses finished jobs of the
store when asked (``resume``), and tells two kinds of failure apart:

* the **process or node died** under a job (a killed pool process, a removed Ray node): the job is
  submitted again, at most ``max_retries`` times;
* the **job raised** (a diverged training, a broken factory): that is deterministic, so it is not
  retried; the job and every job that depends on it are reported as failed, the others finish.

Model factories travel to other processes by reference (``package.module:function`` + JSON kwargs, or
a module-level function's qualified name), never as a pickled closure; JSON architectures as dicts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgefuse.errors import BackendUnavailableError, ContractError, EdgeFuseError, did_you_mean
from edgefuse.jobs import JobOutput, JobSpec, JobStore, ModelSource, execute, format_exception

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorError",
    "InlineExecutor",
    "ProcessExecutor",
    "RayExecutor",
    "SweepContext",
    "SweepError",
    "SweepProgress",
    "SweepReport",
    "available_cores",
    "make_executor",
    "run_jobs",
]

_log = logging.getLogger(__name__)

EXECUTORS = ("inline", "process", "ray")


class ExecutorError(EdgeFuseError, RuntimeError):
    """An executor cannot run jobs at all (workers die at start-up, no Ray cluster at the address)."""


class SweepError(EdgeFuseError, RuntimeError):
    """Jobs of a sweep failed; every other job finished (and is in the job store, if there is one).

    Attributes:
        failures: One dict per failed job: ``job``, ``kind``, ``error``, ``attempts``...
        result: What the sweep produced anyway (``run_grid``: the :class:`~edgefuse.robustness.GridResult`
            without the failed cells, which it lists in ``failed``).
    """

    def __init__(self, message: str, failures: Sequence[Mapping[str, Any]], result: Any = None) -> None:
        super().__init__(message)
        self.failures = [dict(f) for f in failures]
        self.result = result


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass
class SweepContext:
    """What every job of a sweep shares: the data, the model source, the store, the thread count.

    ``corrupted``: the corrupted inputs ``corrupt`` jobs evaluate on (key -> corrupted split, built once
    in the main process by :func:`edgefuse.grid_corruptions.prepare`; None when the sweep has none).
    """

    dataset: Any
    source: ModelSource
    store: JobStore | None = None
    threads: int | None = None
    corrupted: Mapping[str, Any] | None = None


@dataclass
class _Done:
    job_id: str
    output: JobOutput | None = None
    error: str | None = None
    trace: str | None = None
    crashed: bool = False
    worker: str = ""


class Executor:
    """Runs jobs; the scheduler asks how many it can take, submits, and collects what finished."""

    name = "executor"
    workers = 1
    threads: int | None = None

    def start(self, ctx: SweepContext) -> None:
        """Prepare to run jobs of ``ctx`` (start workers, connect to a cluster)."""
        self.ctx = ctx

    def free(self) -> int:
        """How many more jobs can be submitted now."""
        raise NotImplementedError

    def submit(self, spec: JobSpec, deps: Mapping[str, JobOutput], attempt: int) -> None:
        """Start one job (``deps``: the outputs of the jobs it depends on, by role)."""
        raise NotImplementedError

    def wait(self, timeout: float) -> list[_Done]:
        """Jobs that finished, failed or lost their worker, waiting at most ``timeout`` s for the first."""
        raise NotImplementedError

    def status(self) -> list[str]:
        """One line per worker: what it runs."""
        return []

    def close(self) -> None:
        """Stop workers (in-flight jobs are abandoned: they are not in the store, a resume reruns them)."""


class InlineExecutor(Executor):
    """Every job in this process, in submission order (``threads=None`` keeps torch's thread setting)."""

    name = "inline"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self._queue: list[tuple[JobSpec, Mapping[str, JobOutput], int]] = []

    def free(self) -> int:
        """See :meth:`Executor.free`."""
        return 0 if self._queue else 1

    def submit(self, spec: JobSpec, deps: Mapping[str, JobOutput], attempt: int) -> None:
        """See :meth:`Executor.submit`."""
        self._queue.append((spec, deps, attempt))

    def status(self) -> list[str]:
        """See :meth:`Executor.status`."""
        return [f"inline: {self._queue[0][0].describe()}"] if self._queue else ["inline: idle"]

    def wait(self, timeout: float) -> list[_Done]:
        """See :meth:`Executor.wait`."""
        if not self._queue:
            return []
        spec, deps, attempt = self._queue.pop(0)
        ctx = self.ctx
        try:
            kw = {"store": ctx.store, "threads": self.threads, "attempt": attempt, "corrupted": ctx.corrupted}
            out = execute(spec, ctx.dataset, ctx.source, deps, **kw)
        except Exception as exc:
            error, trace = format_exception(exc)
            return [_Done(spec.job_id, error=error, trace=trace, worker="inline")]
        return [_Done(spec.job_id, output=out, worker="inline")]


def _process_worker(conn: Any, payload: bytes, threads: int | None) -> None:
    """A pool worker: load the shared context once, then run the jobs it is sent until told to stop."""
    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        dataset, source, store_root, corrupted = pickle.loads(payload)
        store = JobStore(store_root) if store_root else None
    except BaseException as exc:
        conn.send(("fatal", "", *format_exception(exc)))
        return
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        spec_dict, deps, attempt = msg
        spec = JobSpec.from_dict(spec_dict)
        try:
            kw = {"store": store, "threads": threads, "attempt": attempt, "corrupted": corrupted}
            out = execute(spec, dataset, source, deps, in_process=False, **kw)
        except Exception as exc:
            conn.send(("error", spec.job_id, *format_exception(exc)))
            continue
        conn.send(("ok", spec.job_id, out))


@dataclass(eq=False)
class _Slot:
    index: int
    proc: Any
    conn: Any
    job: JobSpec | None = None
    since: float = 0.0


class ProcessExecutor(Executor):
    """A pool of ``workers`` spawned processes, each with ``threads`` torch threads (see module docstring).

    A worker that dies under a job (killed, out of memory) is replaced and the job reported as crashed
    (the scheduler retries it). Scripts that use it need the usual ``if __name__ == "__main__":`` guard
    (``spawn`` imports the main module in each worker).
    """

    name = "process"

    def __init__(self, workers: int, threads: int | None = None) -> None:
        self.workers = int(workers)
        self.threads = threads or max(1, available_cores() // self.workers)
        self._slots: list[_Slot] = []
        self._closing = False
        self._idle_deaths = 0

    def start(self, ctx: SweepContext) -> None:
        """See :meth:`Executor.start`."""
        import multiprocessing

        super().start(ctx)
        store_root = str(ctx.store.root) if ctx.store is not None else None
        self._payload = pickle.dumps((ctx.dataset, ctx.source.portable(), store_root, ctx.corrupted))
        self._mp = multiprocessing.get_context("spawn")
        self._slots = [self._spawn(i) for i in range(self.workers)]

    def _spawn(self, index: int) -> _Slot:
        parent, child = self._mp.Pipe()
        proc = self._mp.Process(
            target=_process_worker,
            args=(child, self._payload, self.threads),
            name=f"edgefuse-sweep-worker-{index}",
            daemon=True,
        )
        proc.start()
        child.close()
        return _Slot(index, proc, parent)

    def free(self) -> int:
        """See :meth:`Executor.free`."""
        return sum(1 for s in self._slots if s.job is None)

    def submit(self, spec: JobSpec, deps: Mapping[str, JobOutput], attempt: int) -> None:
        """See :meth:`Executor.submit`."""
        slot = next(s for s in self._slots if s.job is None)
        slot.job, slot.since = spec, time.monotonic()
        # a worker that is gone fails the send; wait() sees its sentinel and reports the job as crashed
        with contextlib.suppress(OSError, ValueError):
            slot.conn.send((spec.to_dict(), dict(deps), attempt))

    def status(self) -> list[str]:
        """See :meth:`Executor.status`."""
        now = time.monotonic()
        return [
            f"worker {s.index} (pid {s.proc.pid}): "
            + (f"{s.job.describe()} ({now - s.since:.0f} s)" if s.job else "idle")
            for s in self._slots
        ]

    def wait(self, timeout: float) -> list[_Done]:
        """See :meth:`Executor.wait`."""
        from multiprocessing.connection import wait

        by_conn = {s.conn: s for s in self._slots}
        by_sentinel = {s.proc.sentinel: s for s in self._slots}
        ready = wait([*by_conn, *by_sentinel], timeout)
        events: list[_Done] = []
        dead: list[_Slot] = []
        for r in ready:
            if r in by_conn:
                slot = by_conn[r]
                try:
                    msg = slot.conn.recv()
                except (EOFError, OSError, pickle.UnpicklingError):
                    dead.append(slot)
                    continue
                if msg[0] == "fatal":
                    raise ExecutorError(
                        f"a sweep worker process could not start: {msg[2]}\n{msg[3]}\nIs the model factory's "
                        "module importable in a fresh process (installed, or on PYTHONPATH)?"
                    )
                worker = f"worker {slot.index} (pid {slot.proc.pid})"
                if msg[0] == "ok":
                    events.append(_Done(msg[1], output=msg[2], worker=worker))
                else:
                    events.append(_Done(msg[1], error=msg[2], trace=msg[3], worker=worker))
                slot.job = None
            else:
                dead.append(by_sentinel[r])
        for slot in dict.fromkeys(dead):
            slot.proc.join(timeout=5)
            if slot.proc.is_alive():
                continue
            if slot.job is not None:
                events.append(
                    _Done(
                        slot.job.job_id,
                        error=f"worker process {slot.proc.pid} died (exit code {slot.proc.exitcode}) while "
                        "running the job",
                        crashed=True,
                        worker=f"worker {slot.index} (pid {slot.proc.pid})",
                    )
                )
            elif not self._closing:
                self._idle_deaths += 1
                if self._idle_deaths > 3 * self.workers:
                    raise ExecutorError(
                        f"sweep worker processes keep dying before they run a job (the last: exit code "
                        f"{slot.proc.exitcode}); check memory, or run with --executor inline to see the error"
                    )
            if not self._closing:
                self._slots[self._slots.index(slot)] = self._spawn(slot.index)
        return events

    def close(self) -> None:
        """See :meth:`Executor.close`."""
        self._closing = True
        for s in self._slots:
            with contextlib.suppress(OSError, ValueError):
                s.conn.send(None)
        deadline = time.monotonic() + 2  # idle workers exit at once; one still starting up is killed
        for s in self._slots:
            s.proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if s.proc.is_alive():
                s.proc.kill()
                s.proc.join(timeout=5)
            s.conn.close()
        self._slots = []


_RAY_DATASETS: dict[str, Any] = {}
_RAY_CORRUPTED: dict[str, Any] = {}


def _writable(split: Any) -> Any:
    """A copy of a split whose arrays are writable (the object store's are read-only)."""
    import dataclasses

    return dataclasses.replace(
        split, inputs={m: a.copy() for m, a in split.inputs.items()}, labels=split.labels.copy()
    )


def _ray_job(
    spec_dict: dict[str, Any],
    deps: dict[str, JobOutput],
    data: list[Any],
    source: ModelSource,
    store_root: str | None,
    threads: int,
    attempt: int,
) -> tuple[Any, ...]:
    """The body of a Ray task: fetch the shared data once per worker process, run the job, return its output."""
    import dataclasses

    import ray

    spec = JobSpec.from_dict(spec_dict)
    dataset = _RAY_DATASETS.get(spec.dataset)
    if dataset is None:
        shared = ray.get(data[0])  # read-only arrays in the object store: copy once per worker process
        splits = {k: _writable(s) for k, s in shared.splits.items()}
        dataset = _RAY_DATASETS.setdefault(spec.dataset, dataclasses.replace(shared, splits=splits))
    corrupted = None
    if spec.kind == "corrupt":
        digest = str(spec.params.get("data"))
        if digest not in _RAY_CORRUPTED:
            _RAY_CORRUPTED[digest] = {k: _writable(c) for k, c in (ray.get(data[1]) or {}).items()}
        corrupted = _RAY_CORRUPTED[digest]
    store = JobStore(store_root) if store_root else None
    try:
        kw = {"store": store, "threads": threads, "attempt": attempt, "corrupted": corrupted}
        out = execute(spec, dataset, source, deps, in_process=False, **kw)
    except Exception as exc:
        return ("error", spec.job_id, *format_exception(exc))
    out.info["node"] = ray.get_runtime_context().get_node_id()[:12]
    return ("ok", spec.job_id, out)


class RayExecutor(Executor):
    """Jobs as Ray tasks (see module docstring).

    Args:
        address: ``None`` (a local Ray instance with ``workers`` CPUs, shut down at the end), ``auto``
            (the cluster this machine belongs to) or ``HOST:PORT`` of a head node. Connected to an
            already-initialised Ray, that one is used.
        workers: Most jobs in flight at once (None: as many as are ready; Ray queues them by resources).
        threads: ``num_cpus`` of each task and torch threads in it (default 1).
        gpus_per_job: ``num_gpus`` of each task.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        threads: int | None = None,
        gpus_per_job: float = 0.0,
    ) -> None:
        self.address = address
        self.workers = workers or 0
        self.threads = threads or 1
        self.gpus_per_job = float(gpus_per_job)
        self._refs: dict[Any, tuple[JobSpec, float]] = {}
        self._owns = False

    def start(self, ctx: SweepContext) -> None:
        """See :meth:`Executor.start`."""
        try:
            import ray
        except ImportError:
            raise BackendUnavailableError(
                "the ray executor needs Ray: pip install 'edgefuse[ray]' (or choose --executor process)"
            ) from None
        super().start(ctx)
        if not ray.is_initialized():
            local = self.address is None
            try:
                ray.init(
                    address=self.address,
                    num_cpus=(self.workers or available_cores()) * self.threads if local else None,
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ExecutorError(
                    f"cannot start or reach Ray at {self.address or 'a local instance'}: {exc}. Start a head "
                    "node (`ray start --head`) and pass --ray-address auto (on a node of the cluster) or "
                    "HOST:PORT of the head"
                ) from None
            self._owns = True
        self._ray = ray
        self._data = [ray.put(ctx.dataset), ray.put(dict(ctx.corrupted or {}))]
        self._source = ctx.source.portable()
        self._store = str(ctx.store.root) if ctx.store is not None else None
        self._task = ray.remote(_ray_job).options(
            num_cpus=self.threads,
            num_gpus=self.gpus_per_job,
            max_retries=0,  # retried by run_jobs, which counts and reports retries the same for every executor
            scheduling_strategy="SPREAD",  # jobs across the nodes rather than packed onto the first one
            name="edgefuse-sweep-job",
        )

    def free(self) -> int:
        """See :meth:`Executor.free`."""
        return (self.workers - len(self._refs)) if self.workers else 1 << 30

    def submit(self, spec: JobSpec, deps: Mapping[str, JobOutput], attempt: int) -> None:
        """See :meth:`Executor.submit`."""
        ref = self._task.remote(
            spec.to_dict(), dict(deps), self._data, self._source, self._store, self.threads, attempt
        )
        self._refs[ref] = (spec, time.monotonic())

    def status(self) -> list[str]:
        """See :meth:`Executor.status`."""
        now = time.monotonic()
        return [f"ray task: {spec.describe()} ({now - t:.0f} s)" for spec, t in list(self._refs.values())[:8]]

    def wait(self, timeout: float) -> list[_Done]:
        """See :meth:`Executor.wait`."""
        if not self._refs:
            return []
        ray = self._ray
        refs = list(self._refs)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        events = []
        for ref in ready:
            spec, _ = self._refs.pop(ref)
            try:
                msg = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the worker or its node died: a system failure
                events.append(
                    _Done(spec.job_id, error=f"{type(exc).__name__}: {str(exc)[:500]}", crashed=True)
                )
                continue
            if msg[0] == "ok":
                out = msg[2]
                events.append(_Done(spec.job_id, output=out, worker=f"node {out.info.get('node', '?')}"))
            else:
                events.append(_Done(spec.job_id, error=msg[2], trace=msg[3]))
        return events

    def close(self) -> None:
        """See :meth:`Executor.close`."""
        ray = getattr(self, "_ray", None)
        if ray is None:
            return
        for ref in list(self._refs):
            try:
                ray.cancel(ref, force=True)
            except Exception as exc:  # best effort: the task may have finished or its node be gone
                _log.debug("cannot cancel a Ray task: %s", exc)
        self._refs.clear()
        if self._owns:
            ray.shutdown()
            self._owns = False


def make_executor(
    executor: str | Executor = "inline",
    *,
    workers: int | None = None,
    threads: int | None = None,
    ray_address: str | None = None,
    gpus_per_job: float = 0.0,
) -> Executor:
    """The executor named ``executor`` (an :class:`Executor` instance is returned as it is).

    Raises:
        ContractError: An unknown executor name, ``workers`` or ``threads`` below 1, a negative
            ``gpus_per_job``, or ``ray_address`` for another executor than ``ray``.
    """
    if isinstance(executor, Executor):
        return executor
    if executor not in EXECUTORS:
        raise ContractError(
            f"executor {executor!r} is not one of {list(EXECUTORS)}{did_you_mean(str(executor), EXECUTORS)}"
        )
    for name, value in (("workers", workers), ("threads", threads)):
        if value is not None and int(value) < 1:
            raise ContractError(f"{name} = {value}; it must be at least 1")
    if gpus_per_job < 0:
        raise ContractError(f"gpus_per_job = {gpus_per_job}; it must be >= 0")
    if ray_address is not None and executor != "ray":
        raise ContractError(f"ray_address is for executor='ray'; the executor is {executor!r}")
    if executor == "inline":
        return InlineExecutor(threads)
    if executor == "process":
        return ProcessExecutor(workers or available_cores(), threads)
    return RayExecutor(ray_address, workers, threads, gpus_per_job)


class SweepProgress:
    """One rich progress bar over every job of a sweep, with one status line per worker (stderr)."""

    def __init__(self, total: int, title: str) -> None:
        from rich.console import Console, Group
        from rich.live import Live
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.text import Text

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        )
        self._task = self._progress.add_task(title, total=total)
        self._status = Text("")
        self._live = Live(
            Group(self._progress, self._status), console=Console(stderr=True), refresh_per_second=4
        )
        self._live.start()

    def workers(self, lines: Sequence[str]) -> None:
        """Show what each worker runs."""
        self._status.plain = "\n".join(f"  {line}" for line in lines)

    def advance(self, note: str, count: int = 1) -> None:
        """Count ``count`` more jobs as done (finished, reused or failed), with a note."""
        self._progress.update(self._task, advance=count, description=note)

    def close(self) -> None:
        """Stop drawing."""
        self._status.plain = ""
        self._live.stop()


@dataclass
class SweepReport:
    """What :func:`run_jobs` did.

    Attributes:
        executor: Its name.
        workers: Worker processes (``process``), most tasks in flight (``ray``, 0 = unbounded), 1 inline.
        threads: torch threads per job (None: the process setting, inline only).
        jobs: Jobs in the sweep.
        ran: Jobs run (successfully) in this sweep.
        reused: Jobs read from the job store.
        retries: Submissions again after a worker or node died.
        failed: Job id -> ``{"job", "kind", "error", "traceback", "attempts"}``.
        wall_s: Wall time of the whole sweep.
        store: The job store folder, if any.
        outputs: Job id -> :class:`~edgefuse.jobs.JobOutput` of every finished job.
    """

    executor: str
    workers: int
    threads: int | None
    jobs: int
    ran: int = 0
    reused: int = 0
    retries: int = 0
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall_s: float = 0.0
    store: str | None = None
    outputs: dict[str, JobOutput] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON record (what a grid's ``meta["sweep"]`` holds)."""
        return {
            "executor": self.executor,
            "workers": self.workers,
            "threads": self.threads,
            "jobs": self.jobs,
            "ran": self.ran,
            "reused": self.reused,
            "retries": self.retries,
            "failed": len(self.failed),
            "wall_s": self.wall_s,
            "store": self.store,
        }


def run_jobs(
    specs: Sequence[JobSpec],
    executor: Executor,
    ctx: SweepContext,
    *,
    resume: bool = False,
    max_retries: int = 2,
    progress: bool = False,
    on_done: Callable[[JobSpec, JobOutput], None] | None = None,
) -> SweepReport:
    """Run ``specs`` (every dependency listed before its dependents) on ``executor``.

    Args:
        specs: The jobs (duplicates by id are run once).
        executor: Where they run (:func:`make_executor`).
        ctx: What they share.
        resume: Reuse the finished jobs of ``ctx.store`` (validated: see :class:`~edgefuse.jobs.JobStore`).
        max_retries: Times a job is submitted again after its worker process or node died.
        progress: Show :class:`SweepProgress` on stderr.
        on_done: Called in this process with each finished (or reused) job, as soon as it is there.

    Returns:
        The :class:`SweepReport` (failed jobs are in ``failed``; nothing is raised for them).

    Raises:
        ContractError: ``max_retries`` < 0, or a job depends on a job that is not in ``specs``.
    """
    if max_retries < 0:
        raise ContractError(f"max_retries = {max_retries}; it must be >= 0")
    t0 = time.perf_counter()
    by_id = {s.job_id: s for s in specs}
    order = list(by_id.values())
    for spec in order:
        missing = [d for d in spec.deps.values() if d not in by_id]
        if missing:
            raise ContractError(f"job {spec.describe()} depends on jobs {missing} that are not in the sweep")
    report = SweepReport(executor.name, executor.workers, executor.threads, len(order))
    report.store = str(ctx.store.root) if ctx.store is not None else None
    outputs = report.outputs
    if resume and ctx.store is not None:
        for spec in order:
            out = ctx.store.load(spec)
            if out is not None:
                outputs[spec.job_id] = out
    report.reused = len(outputs)
    waiting = {s.job_id: sum(1 for o in order if s.job_id in o.deps.values()) for s in order}
    pending = [s for s in order if s.job_id not in outputs]
    attempts: dict[str, int] = {}
    running: set[str] = set()
    bar = SweepProgress(len(order), "training the grid") if progress else None

    def release(job_id: str) -> None:  # weights nobody needs any more (on_done has seen them)
        if waiting[job_id] == 0 and job_id in outputs:
            outputs[job_id].weights, outputs[job_id].model = None, None

    def settle(spec: JobSpec) -> None:  # the job finished or failed for good: one dependent less
        for dep in spec.deps.values():
            waiting[dep] -= 1
            release(dep)

    try:
        if bar and report.reused:
            bar.advance(f"reused {report.reused} finished jobs", report.reused)
        for spec in order:
            if spec.job_id in outputs:
                if on_done:
                    on_done(spec, outputs[spec.job_id])
                settle(spec)
                release(spec.job_id)
        if pending:
            executor.start(ctx)
        while pending or running:
            for spec in list(pending):
                failed_dep = next((d for d in spec.deps.values() if d in report.failed), None)
                if failed_dep is not None:
                    pending.remove(spec)
                    report.failed[spec.job_id] = _failure(
                        spec, f"not run: it needs {by_id[failed_dep].describe()}, which failed", None, 0
                    )
                    settle(spec)
                    if bar:
                        bar.advance(f"skipped {spec.describe()}")
                elif all(d in outputs for d in spec.deps.values()) and executor.free() > 0:
                    pending.remove(spec)
                    attempts[spec.job_id] = attempts.get(spec.job_id, 0) + 1
                    deps = {role: outputs[d] for role, d in spec.deps.items()}
                    executor.submit(spec, deps, attempts[spec.job_id])
                    running.add(spec.job_id)
            if not running:
                if pending:  # cannot happen for specs in dependency order; never spin
                    raise ContractError(
                        f"jobs {[s.describe() for s in pending]} wait for jobs that never run"
                    )
                break
            if bar:
                bar.workers(executor.status())
            for ev in executor.wait(0.25):
                running.discard(ev.job_id)
                spec = by_id[ev.job_id]
                if ev.output is not None:
                    outputs[spec.job_id] = ev.output
                    report.ran += 1
                    if bar:
                        bar.advance(f"{spec.describe()} done ({ev.worker})")
                    if on_done:
                        on_done(spec, ev.output)
                    settle(spec)
                    release(spec.job_id)
                elif ev.crashed and attempts[spec.job_id] <= max_retries:
                    report.retries += 1
                    _log.warning(
                        "%s: %s; retrying (attempt %d)", spec.describe(), ev.error, attempts[spec.job_id] + 1
                    )
                    pending.insert(0, spec)
                else:
                    report.failed[spec.job_id] = _failure(
                        spec, ev.error or "?", ev.trace, attempts[spec.job_id]
                    )
                    settle(spec)
                    if ctx.store is not None:
                        ctx.store.record_failure(spec, ev.error or "?", ev.trace, attempts[spec.job_id])
                    if bar:
                        bar.advance(f"FAILED {spec.describe()}")
    finally:
        executor.close()
        if bar:
            bar.close()
    report.wall_s = time.perf_counter() - t0
    return report


def _failure(spec: JobSpec, error: str, trace: str | None, attempts: int) -> dict[str, Any]:
    return {
        "job": spec.job_id,
        "kind": spec.kind,
        "describe": spec.describe(),
        "error": error,
        "traceback": trace,
        "attempts": attempts,
    }
