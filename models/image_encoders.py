"""Image encoders besides the ResNet18 (models/encoders.py VisualEncoder, which reads images as one-frame clips):
torchvision's ViT-B/16 (--image_encoder vit_b_16), the option BalanceBenchmark builds with torch.hub for image + text
sets (pretrained_encoder.py image_encoder, its heads removed). Here it is built with weights=None, so nothing is
downloaded: initial weights come only from a local file (--image_pretrain: torchvision's vit_b_16 state dict, e.g.
vit_b_16-c867db91.pth, or a checkpoint of this project's runs), loaded by `load_pretrained`.
"""
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer, interpolate_embeddings

from dataset.errors import DataError

VIT_B_16 = dict(patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072)


class ViTImageEncoder(VisionTransformer):
    """(B, 3, T, H, W) images (T = 1 for a still image) -> (B, hidden_dim): the class token's output of the final
    LayerNorm, the heads removed; T is folded into the batch and averaged. The state dict keeps torchvision's names
    (conv_proj.*, class_token, encoder.*), so torchvision's files load as they are."""

    def __init__(self, image_size: int = 224, **arch):
        arch = {**VIT_B_16, **arch}
        if image_size % arch["patch_size"]:
            raise DataError(f"--image_size {image_size}: the ViT cuts images into {arch['patch_size']}-pixel patches. "
                            f"Give a multiple of {arch['patch_size']} (224 for the pretrained weights)")
        super().__init__(image_size=image_size, **arch)
        self.heads = nn.Identity()
        self.out_dim = arch["hidden_dim"]  # the feature size the classifier reads

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() == 4:
            return super().forward(images)
        b, c, t, h, w = images.shape
        feats = super().forward(images.transpose(1, 2).reshape(b * t, c, h, w))
        return feats.reshape(b, t, -1).mean(dim=1)

    def load_pretrained(self, path, prefix: str = "encoders.image.") -> str:
        """Weights from a local file: torchvision's ViT state dict (its heads left out; the position embeddings
        interpolated when --image_size is not the file's), one of our checkpoints (keys under `prefix`), or a bare
        state dict of this encoder. Returns a one-line report; a file that does not fit is one DataError."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"pretrained weights not found: {path}. Give a local ViT-B/16 file (torchvision's "
                            "vit_b_16 state dict or a checkpoint of this project); nothing is downloaded")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            reason = (str(err).splitlines() or [type(err).__name__])[0][:120]
            raise DataError(f"cannot read pretrained weights {path} ({reason}): give a state dict saved with "
                            "torch.save") from None
        for wrapper in ("model", "state_dict"):
            if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
                state = state[wrapper]
        if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
            raise DataError(f"{path} holds no state dict of tensors. Give a ViT-B/16 state dict or a checkpoint")
        state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        state = OrderedDict((k, v) for k, v in state.items() if not k.startswith("heads."))
        notes = []
        own = self.state_dict()
        given = state.get("encoder.pos_embedding")
        if given is not None and given.dim() == 3 and given.shape[1] != own["encoder.pos_embedding"].shape[1]:
            try:
                state = interpolate_embeddings(self.image_size, self.patch_size, state)
            except (ValueError, RuntimeError) as err:
                raise DataError(f"{path}: its position embeddings cannot be resized to --image_size "
                                f"{self.image_size} ({err})") from None
            notes.append(f"position embeddings interpolated from {given.shape[1]} to "
                         f"{own['encoder.pos_embedding'].shape[1]} tokens")
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            first_missing, first_unexpected = (missing or ["-"])[0], (unexpected or ["-"])[0]
            raise DataError(f"{path} does not hold this ViT's weights ({len(missing)} missing, first: {first_missing}; "
                            f"{len(unexpected)} unexpected, first: {first_unexpected}). "
                            "Give torchvision's vit_b_16 state dict or a checkpoint with --image_encoder vit_b_16")
        wrong = [k for k in own if state[k].shape != own[k].shape]
        if wrong:
            raise DataError(f"{path}: {wrong[0]} holds shape {tuple(state[wrong[0]].shape)} but this ViT expects "
                            f"{tuple(own[wrong[0]].shape)}. Give a ViT-B/16 file")
        self.load_state_dict(state)
        return f"initialised the ViT-B/16 from {path}" + (f": {'; '.join(notes)}" if notes else "")
