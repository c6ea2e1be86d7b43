"""Reading the best.pt of an audio_only / visual_only run, for the methods built on uni-modal models
(UMT's teachers, UME's members)."""
import json
from pathlib import Path
from typing import Optional, Sequence

from dataset.errors import DataError

from .. import distributed
from ..checkpoint import check_compatible, load_checkpoint


def unimodal_checkpoint(run_dir, modality: str, flag: str, model, same_head: bool) -> dict:
    """The run's best.pt, checked to be a `modality`_only run for the same classes (and, with `same_head`,
    the same fusion and MMCosine head as `model`)."""
    path = Path(run_dir) / "best.pt"
    if not path.is_file():
        raise DataError(f"{flag}: no best.pt in {run_dir}. Give the run directory of a finished "
                        f"--method {modality}_only run")
    ckpt = load_checkpoint(path)
    if list(ckpt["model_config"].get("modalities", [])) != [modality]:
        raise DataError(f"{flag}: {run_dir} is not a {modality}_only run (its model uses "
                        f"{', '.join(ckpt['model_config'].get('modalities', []))}). Give the {modality}_only run")
    config = {"fusion": model.fusion_name, "mmcosine": model.mmcosine, "n_classes": model.n_classes}
    if not same_head:  # only the encoder is used
        config.update(fusion=ckpt["model_config"]["fusion"], mmcosine=ckpt["model_config"]["mmcosine"])
    check_compatible(config, ckpt["model_config"], path)
    return ckpt


def selected_on(run_dir, ckpt: dict) -> Optional[str]:
    """The split that chose the run's best.pt ("test" or "val"), from the checkpoint's record of its best epoch, else
    from its flags (the checkpoint's or args.json: no --val_split means the test set); None where neither tells."""
    split = (ckpt.get("best") or {}).get("split")
    if split is not None:
        return split
    args = ckpt.get("args")
    if args is None and (Path(run_dir) / "args.json").is_file():
        args = json.loads((Path(run_dir) / "args.json").read_text())
    if args is None:
        return None
    return "test" if args.get("val_split") is None else "val"


def selection_note(runs: Sequence, ckpts: Sequence[dict], flag: str) -> Optional[str]:
    """One line naming the runs whose best.pt was chosen on the test set, or None."""
    chosen = [str(run) for run, ckpt in zip(runs, ckpts) if selected_on(run, ckpt) == "test"]
    if not chosen:
        return None
    whose = "its" if len(chosen) == 1 else "their"
    return (f"note: {flag}: {' and '.join(chosen)} chose {whose} best.pt on the test set (no --val_split), so this run "
            "builds on weights the test clips picked; train the uni-modal runs with --val_split to keep them out")


def say_test_selection(runs: Sequence, ckpts: Sequence[dict], flag: str) -> None:
    note = selection_note(runs, ckpts, flag)
    if note is not None and distributed.is_main_process():
        print(note, flush=True)


def encoder_state(ckpt: dict, modality: str) -> dict:
    """The checkpoint's weights of one encoder, keys relative to the encoder."""
    prefix = f"{modality}_encoder."
    return {k[len(prefix):]: v for k, v in ckpt["model"].items() if k.startswith(prefix)}
