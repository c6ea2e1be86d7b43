"""One logger per run: metrics.jsonl (one JSON object per epoch) and TensorBoard scalars."""
import json
from pathlib import Path
from typing import Dict, List, Optional


def read_metrics(path: Path) -> List[Dict]:
    """The epochs of a metrics.jsonl. A line that does not parse (a crash in the middle of writing
    it) is left out: the epochs around it are whole."""
    return parse_metrics(Path(path).read_text().splitlines())


def parse_metrics(lines: List[str]) -> List[Dict]:
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [r for r in records if isinstance(r, dict) and "epoch" in r]


class RunLogger:
    def __init__(self, run_dir: Path, use_tensorboard: bool = True, tensorboard_path: Optional[str] = None,
                 resume_from_epoch: Optional[int] = None):
        self.metrics_path = Path(run_dir) / "metrics.jsonl"
        self.dropped = ""  # what resuming removed of metrics.jsonl
        if resume_from_epoch is not None:
            self._drop_epochs_from(resume_from_epoch)
        self.writer = None
        if use_tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: it is slow to import
            self.writer = SummaryWriter(log_dir=str(tensorboard_path or Path(run_dir) / "tensorboard"),
                                        purge_step=resume_from_epoch)

    def _drop_epochs_from(self, epoch: int) -> None:
        """On resume, forget lines of epochs the restored checkpoint did not include, and half-written ones;
        `dropped` says what went, for the run to tell."""
        if not self.metrics_path.is_file():
            return
        lines = [line for line in self.metrics_path.read_text().splitlines() if line.strip()]
        records = parse_metrics(lines)
        kept = [record for record in records if record["epoch"] < epoch]
        later, torn = len(records) - len(kept), len(lines) - len(records)
        self.dropped = ", ".join(text for n, text in ((later, f"{later} line(s) of epochs after it"),
                                                      (torn, f"{torn} half-written line(s)")) if n)
        self.metrics_path.write_text("".join(json.dumps(record) + "\n" for record in kept))

    def log_epoch(self, epoch: int, record: Dict) -> None:
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps({"epoch": epoch, **record}) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    split, _, name = key.partition("_")
                    tag = f"{name}/{split}" if split in ("train", "val", "test") else key
                    self.writer.add_scalar(tag, value, epoch)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
