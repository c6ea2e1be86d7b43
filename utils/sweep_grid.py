"""A sweep's grid and how one point of it runs: the run directory's name, skip / resume / retry, and the FAILED
record. The same rules whichever way the points are launched (one after another, a local pool, a submitit job
array): see scripts/sweep.py."""
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

FALSE = ("false", "0", "no", "n", "f")
STOPPED = (130, 143)  # Ctrl-C, SIGTERM: the run kept last.pt and says how to resume


@dataclass(frozen=True)
class Point:
    fusion: str
    method: str
    mmcosine: str
    scaling: Optional[str]   # None without MMCosine: the scale plays no part
    seed: str

    @property
    def name(self) -> str:
        name = f"{self.fusion}-{self.method}-mmcosine{self.mmcosine}"
        if self.scaling is not None:
            name += f"-s{self.scaling}"
        return f"{name}-seed{self.seed}"


def grid(fusions: Sequence[str], methods: Sequence[str], mmcosine: Sequence[str], scalings: Sequence[str],
         seeds: Sequence[str]) -> List[Point]:
    """Every point, in the order scripts/sweep.sh ran them: fusion, method, MMCosine, scaling, seed."""
    points = []
    for fusion in fusions:
        for method in methods:
            for mm in mmcosine:
                for scaling in ([None] if mm.lower() in FALSE else scalings):
                    points += [Point(fusion, method, mm, scaling, seed) for seed in seeds]
    return points


@dataclass
class Launch:
    """How a point's process is started: interpreter, entry script, flags after --, processes per run
    (torchrun when more than one), CPU threads, and where its output goes."""
    entry: str
    flags: Sequence[str] = ()
    python: str = sys.executable
    gpus_per_run: int = 1
    threads: Optional[int] = None
    log_dir: Optional[Path] = None   # None: the point's output goes to this process's stdout / stderr

    def command(self, run_dir: Path, point: Point) -> List[str]:
        start = [self.python, self.entry]
        if self.gpus_per_run > 1:
            start = [self.python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={self.gpus_per_run}",
                     self.entry]
        if (run_dir / "last.pt").is_file():
            return [*start, "--resume", str(run_dir), "--no_progress"]
        scale = ["--scaling", point.scaling] if point.scaling is not None else []
        return [*start, "--train", "--fusion_method", point.fusion, "--method", point.method, "--mmcosine",
                point.mmcosine, *scale, "--random_seed", point.seed, "--run_dir", str(run_dir), "--no_progress",
                *self.flags]

    def environment(self, gpu: Optional[str] = None) -> dict:
        env = dict(os.environ)
        if self.threads:
            env.update(OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        return env


def prepare(run_dir: Path, retry: bool) -> Optional[str]:
    """Before a point runs: the reason to skip it (a recorded failure, without --retry_failed), or None. A retried
    point without last.pt starts afresh."""
    failed = run_dir / "FAILED"
    if failed.is_file():
        if not retry:
            first = (failed.read_text().splitlines() or ["failed"])[0]
            return f"failed before ({first}); skipped (--retry_failed runs it again)"
        failed.unlink()
        if not (run_dir / "last.pt").is_file():
            shutil.rmtree(run_dir)
    return None


def record_failure(run_dir: Path, command: Sequence[str], code: int, stderr: str) -> None:
    """FAILED: the exit status and the last line the run wrote to stderr, then the command (as sweep.sh wrote it)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = [line for line in stderr.splitlines() if line.strip()]
    (run_dir / "FAILED").write_text(f"exit {code}: {lines[-1] if lines else ''}\n"
                                    + " ".join(shlex.quote(c) for c in command) + " \n")


class PointRun:
    """One point, run to its end (or until `stop()`): returns "done", "failed", "skipped" or "stopped"."""

    def __init__(self, out: Path, point: Point, launch: Launch, retry: bool, gpu: Optional[str] = None):
        self.out, self.point, self.launch, self.retry, self.gpu = Path(out), point, launch, retry, gpu
        self.process: Optional[subprocess.Popen] = None
        self.stopping = False

    @property
    def run_dir(self) -> Path:
        return self.out / self.point.name

    def say(self, text: str) -> None:
        print(f"== {self.run_dir}{': ' + text if text else ''} ==", flush=True)

    def __call__(self) -> str:
        skip = prepare(self.run_dir, self.retry)
        if skip is not None:
            self.say(skip)
            return "skipped"
        command = self.launch.command(self.run_dir, self.point)
        self.say("resuming (a finished run just reports its last epoch)" if "--resume" in command else "")
        stdout = None
        if self.launch.log_dir is not None:
            self.launch.log_dir.mkdir(parents=True, exist_ok=True)
            stdout = open(self.launch.log_dir / f"{self.point.name}.out", "a")
        try:
            self.process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True,
                                            env=self.launch.environment(self.gpu))
            _, stderr = self.process.communicate()
        finally:
            if stdout is not None:
                stdout.close()
        sys.stderr.write(stderr)
        code = self.process.returncode
        if code == 0:
            return "done"
        if code in STOPPED or self.stopping:  # stopped by a signal (a scheduler's, Ctrl-C): resumable, not failed
            self.say(f"stopped (exit {code}); last.pt kept: the next sweep resumes it")
            return "stopped"
        record_failure(self.run_dir, command, code, stderr)
        self.say(f"failed (exit {code}), recorded in {self.run_dir / 'FAILED'}; the sweep goes on")
        return "failed"

    def stop(self) -> None:
        """Ask the point's run to stop as a scheduler does (SIGTERM: it ends with last.pt whole) and wait for it."""
        self.stopping = True
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()
