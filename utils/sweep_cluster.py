"""Launching a sweep's points: one after another, as a local pool (several runs per GPU), or as a submitit job
array (SLURM, or submitit's local executor, which the tests use). On a submitit job's preemption or time limit,
submitit calls the point's `checkpoint()`: the run is stopped as a scheduler stops it (SIGTERM: it ends with last.pt
whole) and the point is requeued; the requeued job finds last.pt and resumes exactly."""
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .sweep_grid import Launch, Point, PointRun, record_failure

MAX_REQUEUES = 20  # preemptions of one point before it is recorded as failed instead of requeued again


def visible_gpus() -> List[str]:
    """The GPUs this machine shows (their CUDA indices), or [] on a CPU-only machine."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def run_serial(out: Path, points: Sequence[Point], launch: Launch, retry: bool) -> Dict[str, str]:
    return {p.name: PointRun(out, p, launch, retry)() for p in points}


def run_pool(out: Path, points: Sequence[Point], launch: Launch, retry: bool, jobs: int) -> Dict[str, str]:
    """`jobs` points at once; slot i runs on GPU i mod (number of GPUs), so with more jobs than GPUs several
    runs share each GPU; a point of several GPUs (torchrun) takes the slot's GPUs i*g .. i*g + g - 1 (mod the
    count). Each point's output goes to <out>/logs/<point>.out."""
    gpus = visible_gpus()
    free_slots = list(range(jobs))
    lock = threading.Lock()
    launch = replace(launch, log_dir=out / "logs")  # the caller's launch stays as it was

    def one(point: Point) -> str:
        with lock:
            slot = free_slots.pop(0)
        try:
            per_run = launch.gpus_per_run
            gpu = ",".join(gpus[(slot * per_run + k) % len(gpus)] for k in range(per_run)) if gpus else None
            return PointRun(out, point, launch, retry, gpu)()
        finally:
            with lock:
                free_slots.append(slot)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return dict(zip((p.name for p in points), pool.map(one, points)))


class SubmittedPoint:
    """A point as a submitit job (picklable). Its result is the point's status."""

    def __init__(self, out: Path, point: Point, launch: Launch, retry: bool, requeues: int = 0):
        self.out, self.point, self.launch, self.retry, self.requeues = Path(out), point, launch, retry, requeues
        self.current: Optional[PointRun] = None

    def __call__(self) -> str:
        self.current = PointRun(self.out, self.point, self.launch, self.retry)
        return self.current()

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on SIGUSR1/SIGUSR2 (preemption or time limit): stop the run with last.pt whole and
        requeue the point, which resumes; after MAX_REQUEUES preemptions the point is recorded as failed."""
        import submitit
        if self.current is not None:
            self.current.stop()
        if self.requeues >= MAX_REQUEUES:
            record_failure(self.out / self.point.name, ["(requeued)"], 143,
                           f"preempted or timed out {self.requeues + 1} times; not requeued again")
            return None
        return submitit.helpers.DelayedSubmission(
            SubmittedPoint(self.out, self.point, self.launch, False, self.requeues + 1))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["current"] = None  # a running process does not travel
        return state


def executor_for(out: Path, cluster: str, options: dict):
    """A submitit executor for `cluster` ("slurm" or "local") with the sweep's resources."""
    import submitit
    executor = submitit.AutoExecutor(folder=str(out / "submitit" / "%j"), cluster=cluster)
    executor.update_parameters(**options)
    return executor


def submit(out: Path, points: Sequence[Point], launch: Launch, retry: bool, cluster: str, options: dict,
           wait: bool = True):
    """The grid as one job array. Returns the jobs; with `wait`, their statuses (a job that died is "failed")."""
    executor = executor_for(out, cluster, options)
    with executor.batch():
        jobs = [executor.submit(SubmittedPoint(out, p, launch, retry)) for p in points]
    print(f"submitted {len(jobs)} job(s) to {cluster}: {', '.join(str(j.job_id) for j in jobs[:5])}"
          f"{' ...' if len(jobs) > 5 else ''}; logs in {out / 'submitit'}", flush=True)
    if not wait:
        return {p.name: "submitted" for p in points}, jobs
    statuses = {}
    for point, job in zip(points, jobs):
        try:
            statuses[point.name] = job.result()
        except Exception as err:  # the job itself died (killed, out of memory, not requeued)
            first = (str(err).strip().splitlines() or [type(err).__name__])[-1]
            print(f"== {out / point.name}: job {job.job_id} failed: {first} ==", flush=True)
            statuses[point.name] = "failed"
    return statuses, jobs
