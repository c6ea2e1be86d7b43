"""Full-state checkpoints written atomically, and the checks made before one is reused."""
import errno
import os
import shutil
import tempfile
from pathlib import Path

import torch

from dataset.errors import DataError


def state_bytes(obj) -> int:
    """Bytes of the tensors in a (nested) state: about what torch.save writes of it."""
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(state_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(state_bytes(v) for v in obj)
    return 0


def _disk_full(err: BaseException) -> bool:
    # torch.save reports a short write as RuntimeError "[enforce fail at inline_container.cc] . unexpected pos"
    text = str(err)
    return getattr(err, "errno", None) == errno.ENOSPC or "unexpected pos" in text or "No space left" in text


def save_atomic(state: dict, path: Path) -> None:
    """Write to a temp file in the same folder, then rename: a crash never leaves a half-written file. A full
    disk is one DataError saying what was needed, what is free and that the previous file is intact."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        if not _disk_full(err):
            raise
        os.remove(tmp)
        kept = f"the previous {path.name} is intact" if path.is_file() else f"no earlier {path.name} existed"
        raise DataError(f"the disk holding {path.parent} is full: {path.name} needs about {state_bytes(state):,} "
                        f"bytes and {shutil.disk_usage(path.parent).free:,} are free; {kept}. Free some space "
                        f"(or copy the run elsewhere) and continue with --resume {path.parent}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_free_space(folder: Path, needed: int) -> None:
    """Refuse a run whose checkpoints would not fit on the disk, before anything is written."""
    folder = Path(folder).resolve()
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DataError(f"{folder} has {free:,} bytes free, and this run's checkpoints need about {needed:,} "
                        "(last.pt and best.pt, and a temporary copy while one is written). Free some space or "
                        "choose another --run_dir")


def _read(path, what: str, hint: str) -> object:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}. {hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        # torch's own first line may advise weights_only=False: loading arbitrary objects is not the fix here.
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "weights_only" in reason or "Weights only" in reason:
            reason = "it holds objects other than tensors and plain values"
        raise DataError(f"cannot read {what} {path} ({reason[:120]}): the file is damaged, or not a checkpoint "
                        "written by this project") from None


def load_checkpoint(path) -> dict:
    state = _read(path, "checkpoint", "Give the path of a run's last.pt or best.pt")
    if not isinstance(state, dict) or "model" not in state or "model_config" not in state:
        raise DataError(f"{path} is not a checkpoint written by this project (no model / model_config)")
    return state


def check_compatible(config: dict, ckpt_config: dict, path) -> None:
    """A checkpoint must match the model the flags ask for: same fusion, head, and the same classes in
    the same order (output row k must mean the same class)."""
    for key, flag in (("fusion", "--fusion_method"), ("mmcosine", "--mmcosine"), ("n_classes", "the class list")):
        if config[key] != ckpt_config[key]:
            raise DataError(f"checkpoint {path} has {key}={ckpt_config[key]!r} but {flag} gives {config[key]!r}. "
                            f"Drop the flag to use the checkpoint's value, or pick the matching checkpoint")
    # before issue 21 every checkpoint was audio-visual
    trained, given = ckpt_config.get("dataset_modalities", ["audio", "visual"]), config["dataset_modalities"]
    if list(trained) != list(given):
        raise DataError(f"checkpoint {path} has the modalities {', '.join(trained)}, this script's data "
                        f"{', '.join(given)}: use it with the entry script that trained it")
    trained, given = ckpt_config.get("classes"), config.get("classes")
    if trained and given and list(trained) != list(given):
        where = next(i for i, (a, b) in enumerate(zip(trained, given)) if a != b)
        raise DataError(f"checkpoint {path} was trained with the classes {list(trained)} in this order, but the class "
                        f"list gives {list(given)} (first difference at position {where}). Use the class list it was "
                        "trained with (--class_csv), in its order")


# State-dict key prefixes of the checkpoints written before models were keyed by modality (issue 21), which
# were all audio-visual, and their names since.
LEGACY_PREFIXES = {"audio_encoder.": "encoders.audio.", "visual_encoder.": "encoders.visual.",
                   "fusion.fc_a.": "fusion.fc.audio.", "fusion.fc_v.": "fusion.fc.visual."}


def current_keys(state: dict) -> dict:
    """A state dict with the keys of an audio-visual checkpoint written before issue 21 renamed."""
    def rename(key: str) -> str:
        for old, new in LEGACY_PREFIXES.items():
            if key.startswith(old):
                return new + key[len(old):]
        return key
    return {rename(k): v for k, v in state.items()}


def load_model_state(model: torch.nn.Module, state: dict, path) -> None:
    """The checkpoint's weights into the model the flags built; a mismatch is one clear line."""
    try:
        model.load_state_dict(current_keys(state))
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:300]
        raise DataError(f"checkpoint {path} does not fit the model these flags build ({detail}). Evaluate it with the "
                        "model flags it was trained with, or use a checkpoint of this version") from None


def load_encoder_weights(encoder: torch.nn.Module, path, prefix: str, first_layer: str = "average") -> str:
    """Load a pretrained encoder from a bare state dict, from one of our checkpoints (keys under `prefix`, e.g.
    'encoders.audio.'), or from torchvision's ImageNet ResNet18 file (conv1.weight, layer1..4: models/imagenet_init.py,
    conv1 adapted to the encoder's input channels by `first_layer`). Returns a one-line report of what did not match."""
    own = getattr(encoder, "load_pretrained", None)
    if own is not None:  # an encoder that reads its own files (models/image_encoders.py: the ViT's position embeddings)
        return own(path, prefix)
    flag = "--" + prefix.rstrip(".").split(".")[-1] + "_pretrain"
    state = _read(path, "pretrained weights", f"Check {flag}")
    if isinstance(state, dict) and "model_config" in state:
        state = current_keys(state["model"])
    elif isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DataError(f"{path} holds no state dict. Give encoder weights or a checkpoint of this project")
    if "conv1.weight" in state or "module.conv1.weight" in state:  # torchvision's names: an ImageNet ResNet
        from models.imagenet_init import load_imagenet_resnet18
        try:
            return load_imagenet_resnet18(encoder, path, first_layer, prefix)
        except ValueError as err:  # an encoder that is not a ResNet trunk
            raise DataError(f"{flag} {path} is a torchvision ResNet file, and {err}: give weights of this "
                            "encoder (a run's checkpoint)") from None
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    result = encoder.load_state_dict(state, strict=False)
    n_loaded = len(encoder.state_dict()) - len(result.missing_keys)
    if n_loaded == 0:
        raise DataError(f"{path}: no weight matches the {prefix.rstrip('.')} (first keys: {list(state)[:3]}). "
                        "Give encoder weights or a checkpoint of this project")
    return (f"loaded {n_loaded} tensors into {prefix.rstrip('.')} from {path}; "
            f"missing {len(result.missing_keys)} {result.missing_keys[:5]}, "
            f"unexpected {len(result.unexpected_keys)} {result.unexpected_keys[:5]}")
