"""Initial weights for the UCF-101 encoders from a local ResNet18 file: torchvision's ImageNet state dict
(resnet18-f37072fd.pth, keys conv1.weight, bn1.*, layer1.0.conv1.weight, ..., fc.*), a bare encoder state
dict of ours (trunk.0.weight, ...), or one of our checkpoints. Never a download.

How each encoder takes them:
- RGB (VisualEncoder, 3 channels): as they are.
- 2-D flow (Flow2DEncoder, 2 channels): every layer as is; conv1, whose filters see colour, either from the RGB
  filters averaged over the 3 colour channels and repeated on u and v ("average": TSN's cross-modality
  initialisation, Wang et al. 2016), or left as built ("random": BalanceBenchmark deletes conv1.weight before
  loading ImageNet weights into its flow encoder).
- 3-D flow (Flow3DEncoder): the same, then every 2-D filter inflated over time (I3D, Carreira & Zisserman
  2017): repeated over the k time taps and divided by k (7 for conv1, 3 in the blocks, 1 for the downsample),
  so a clip of identical frames gives the 2-D network's activations. BatchNorm weights carry over.
The file's fc layer is not used. A missing or unreadable file, or one whose layers do not fit, is one
DataError naming the file, what it holds and what the encoder expects.
"""
from pathlib import Path
from typing import Dict, Optional

import torch
from torch import nn

from dataset.errors import DataError

FIRST_LAYERS = ("average", "random")
TRUNK_NAMES = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
TRUNK_INDEX = {name: index for index, name in TRUNK_NAMES.items()}
CONTAINERS = ("trunk", "backbone")  # 2-D encoders' Sequential, Flow3DEncoder's


def read_state(path: Path) -> Dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataError(f"pretrained weights not found: {path}. Give a local ResNet18 file (torchvision's "
                        "resnet18-f37072fd.pth or a checkpoint of this project); nothing is downloaded")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0][:120]
        raise DataError(f"cannot read pretrained weights {path} ({reason}): give a ResNet18 state dict saved with "
                        "torch.save") from None
    for wrapper in ("model", "state_dict"):  # our checkpoints; common training scripts' files
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise DataError(f"{path} holds no state dict of tensors. Give a ResNet18 state dict or a checkpoint")
    return state


def torchvision_names(state: Dict[str, torch.Tensor], path: Path, prefix: Optional[str]) -> Dict[str, torch.Tensor]:
    """The ResNet18 layers of `state` under torchvision's names. A file holding several of our encoders gives
    the one under `prefix` (e.g. "encoders.flow."), else its only 3-channel (RGB) trunk."""
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    if "conv1.weight" in state:
        return {k: v for k, v in state.items() if not k.startswith("fc.")}
    # our encoders' first convolution: "<prefix>trunk.0.weight" / "<prefix>backbone.0.weight"
    trunks = sorted({k[:-len("0.weight")] for k in state
                     if k.endswith("0.weight") and k[:-len("0.weight")].rstrip(".").split(".")[-1] in CONTAINERS})
    chosen = [t for t in trunks if prefix and t.startswith(prefix)]
    if len(chosen) != 1:
        chosen = [t for t in trunks if state[f"{t}0.weight"].shape[1] == 3] if len(trunks) > 1 else trunks
    if len(chosen) != 1:
        found = ", ".join(t.rstrip(".") for t in trunks) or f"keys such as {list(state)[:3]}"
        raise DataError(f"{path}: cannot tell which ResNet18 to take (it holds {found}). Give torchvision's "
                        "resnet18 state dict or a checkpoint with one RGB encoder")
    trunk = chosen[0]
    out = {}
    for key, value in state.items():
        if key.startswith(trunk):
            index, _, rest = key[len(trunk):].partition(".")
            if index in TRUNK_NAMES:
                out[f"{TRUNK_NAMES[index]}.{rest}"] = value
    return out


def fit(value: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """A 2-D filter inflated over time when the encoder is 3-D (I3D); anything else as is."""
    if value.dim() == 4 and len(shape) == 5:
        taps = shape[2]
        return value.unsqueeze(2).repeat(1, 1, taps, 1, 1) / taps
    return value


def load_imagenet_resnet18(encoder: nn.Module, path, first_layer: str = "average",
                           prefix: Optional[str] = None) -> str:
    """Load a ResNet18 file into a 2-D (trunk) or 3-D (backbone) encoder by the rules of the module docstring.
    Returns a one-line report."""
    if first_layer not in FIRST_LAYERS:
        raise ValueError(f"first_layer must be one of {FIRST_LAYERS}")
    path = Path(path)
    container = next((getattr(encoder, c) for c in CONTAINERS if hasattr(encoder, c)), None)
    if container is None:
        raise ValueError(f"{type(encoder).__name__} has no ResNet trunk to load")
    source = torchvision_names(read_state(path), path, prefix)
    target = container.state_dict()
    loaded, notes = {}, []
    for name, value in source.items():
        head, _, rest = name.partition(".")
        key = f"{TRUNK_INDEX.get(head, head)}.{rest}"
        if key not in target:
            raise DataError(f"{path} holds {name} {tuple(value.shape)}, which the {type(encoder).__name__} (a "
                            "ResNet18) has no place for: is it another architecture? Give a ResNet18 file")
        want = target[key].shape
        if key == "0.weight":
            if first_layer == "random" and want[1] != 3:
                notes.append("conv1 left as built")
                continue
            if value.shape[1] != want[1]:  # RGB filters for flow input: TSN's cross-modality initialisation
                value = value.mean(dim=1, keepdim=True).repeat(1, want[1], *([1] * (value.dim() - 2)))
                notes.append(f"conv1 averaged over colour and repeated on {want[1]} channels")
        fitted = fit(value, want)
        if fitted.shape != want:
            raise DataError(f"{path}: {name} holds shape {tuple(value.shape)} but the {type(encoder).__name__} "
                            f"expects {tuple(want)}. Give a ResNet18 file for this encoder")
        loaded[key] = fitted.to(target[key].dtype)
    skipped_conv1 = ["0.weight"] if "conv1 left as built" in notes else []
    missing = [k for k in target
               if k not in loaded and k not in skipped_conv1 and not k.endswith("num_batches_tracked")]
    if missing:
        raise DataError(f"{path} lacks {len(missing)} of the {type(encoder).__name__}'s layers (first: {missing[0]}). "
                        "Give a complete ResNet18 state dict")
    container.load_state_dict(loaded, strict=False)
    if any(v.dim() == 5 for v in target.values()):
        notes.append("2-D filters inflated over time (I3D: repeated over the time taps, divided by their number)")
    return f"initialised the {type(encoder).__name__} from {path}" + (f": {'; '.join(notes)}" if notes else "")
