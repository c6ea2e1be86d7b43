"""Reading the best.pt of an audio_only / visual_only run, for the methods built on uni-modal models
(UMT's teachers, UME's members)."""
from pathlib import Path

from dataset.errors import DataError

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


def encoder_state(ckpt: dict, modality: str) -> dict:
    """The checkpoint's weights of one encoder, keys relative to the encoder."""
    prefix = f"{modality}_encoder."
    return {k[len(prefix):]: v for k, v in ckpt["model"].items() if k.startswith(prefix)}
