"""Reading the uni-modal runs that some methods build on (UMT's teachers, UME's members, MSLR's learning
rates): a run of the uni-modal baseline on one modality (audio_only / visual_only on the audio-visual scripts,
--method unimodal --modality NAME on the others)."""
import json
from pathlib import Path
from typing import Optional, Sequence

from dataset.errors import DataError

from .. import distributed
from ..checkpoint import check_compatible, current_keys, load_checkpoint


def unimodal_method(modality: str) -> str:
    """How a user names the uni-modal baseline on `modality`: NAME_only where that method exists (audio_only),
    else unimodal --modality NAME."""
    from . import METHODS  # the registry imports this module
    return f"{modality}_only" if f"{modality}_only" in METHODS else f"unimodal --modality {modality}"


def kept_modality(saved_args: dict) -> Optional[str]:
    """The modality a run's flags (its args.json) trained alone, or None for a run of another method."""
    from . import METHODS
    method = saved_args.get("method")
    if method == "unimodal":
        return saved_args.get("modality")
    return getattr(METHODS.get(method), "modality", None)  # audio_only's is fixed by its class


def runs_in_order(modalities: Sequence[str]) -> str:
    """'an audio_only and a visual_only run': the uni-modal runs a flag takes, in the dataset's order."""
    named = [f"{'an' if n[0] in 'aeio' else 'a'} {n}" for n in map(unimodal_method, modalities)]
    return (", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1 else named[0]) + " run"


def unimodal_checkpoint(run_dir, modality: str, flag: str, model, same_head: bool) -> dict:
    """The run's best.pt, checked to be a uni-modal run on `modality` of the same dataset's modalities, for the
    same classes (and, with `same_head`, the same fusion and MMCosine head as `model`)."""
    path = Path(run_dir) / "best.pt"
    wanted = unimodal_method(modality)
    if not path.is_file():
        raise DataError(f"{flag}: no best.pt in {run_dir}. Give the run directory of a finished "
                        f"--method {wanted} run")
    ckpt = load_checkpoint(path)
    if list(ckpt["model_config"].get("modalities", [])) != [modality]:
        raise DataError(f"{flag}: {run_dir} is not a {wanted} run (its model uses "
                        f"{', '.join(ckpt['model_config'].get('modalities', []))}). Give the {wanted} run")
    config = {"fusion": model.fusion_name, "mmcosine": model.mmcosine, "n_classes": model.n_classes,
              "dataset_modalities": list(model.names)}
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
    """The checkpoint's weights of one encoder, keys relative to the encoder (checkpoints written before the
    model was keyed by modality name included)."""
    prefix = f"encoders.{modality}."
    return {k[len(prefix):]: v for k, v in current_keys(ckpt["model"]).items() if k.startswith(prefix)}
