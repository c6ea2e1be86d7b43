"""The loop every preparation script shares: do each clip's job under a progress bar, skip
finished clips, keep going past failures and report them at the end (and in failed.txt)."""
from pathlib import Path
from typing import Callable, Iterable, List, Tuple

from tqdm import tqdm


def prepare_all(jobs: Iterable[Tuple[str, Callable[[], None], Callable[[], bool]]], report_dir: Path,
                desc: str) -> List[str]:
    """jobs: (name, do, done). Runs `do` for every job whose `done()` is false; returns the failures."""
    jobs = list(jobs)
    todo = [job for job in jobs if not job[2]()]
    print(f"{len(jobs)} clips, {len(jobs) - len(todo)} already done")
    failed = []
    for name, do, _ in tqdm(todo, desc=desc, dynamic_ncols=True):
        try:
            do()
        except Exception as err:  # report every failure at the end instead of stopping the batch
            failed.append(f"{name}: {err}")
    report = Path(report_dir) / "failed.txt"
    if failed:
        report.write_text("\n".join(failed) + "\n")
        print(f"{len(failed)} clip(s) failed (listed in {report}):", *failed[:10], sep="\n  ")
    else:
        report.unlink(missing_ok=True)
        print("all clips done")
    return failed
