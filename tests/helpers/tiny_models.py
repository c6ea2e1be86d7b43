"""A small multi-modal classifier for the methods' unit tests: the project's MultiModalClassifier (fusion, heads,
MMCosine) on conv-BN-ReLU encoders that give the 512-d features the fusion modules expect. What the
tests check (which gradient reaches which encoder, BatchNorm in eval or train mode) does not depend on
the encoders' depth, and a step takes milliseconds instead of seconds.

Audio-visual by default (audio (B, 1, 32, 24), frames (B, 3, 2, 16, 16)); THREE is a generated three-modality
set (x, y, z: the first two like audio and frames, z another single-channel map), so the claims made for any
number of modalities are checked before a real three-modality dataset arrives."""
import torch
from torch import nn

from dataset.modalities import AUDIO_VISUAL, Modality
from models import MultiModalClassifier
from utils.args import add_clip_args, add_shared_args, entry_parser
from utils.methods import METHODS

THREE = (Modality("x", "x", lambda t: t.float()), Modality("y", "y", lambda t: t.float()),
         Modality("z", "z", lambda t: t.float()))
IN_CHANNELS = {"audio": 1, "visual": 3, "x": 1, "y": 3, "z": 1}


class TinyEncoder(nn.Module):
    """(B, C, H, W), or frames (B, C, T, H, W) with T folded into the batch, -> (B, 512)."""

    def __init__(self, in_channels: int, width: int = 8):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(in_channels, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
                                   nn.Conv2d(width, 512, 3, 2, 1), nn.BatchNorm2d(512), nn.ReLU())

    def forward(self, x):
        if x.dim() == 5:
            b = x.shape[0]
            maps = self.trunk(x.transpose(1, 2).reshape(-1, x.shape[1], *x.shape[3:]))
            return maps.reshape(b, -1, *maps.shape[1:]).mean(dim=(1, 3, 4))
        return self.trunk(x).mean(dim=(2, 3))


def tiny_classifier(n_classes: int = 3, fusion: str = "concat", mmcosine: bool = False, seed: int = 0,
                    modalities=AUDIO_VISUAL) -> MultiModalClassifier:
    torch.manual_seed(seed)
    encoders = {m.name: TinyEncoder(IN_CHANNELS[m.name]) for m in modalities}
    return MultiModalClassifier(n_classes, encoders, fusion, mmcosine=mmcosine)


def method_args(method: str, *flags: str, modalities=AUDIO_VISUAL):
    """An entry script's flags for `method` (every default as a user gets it; per-modality flags named after
    `modalities`), with `flags` typed. Audio-visual: main_CD.py's parser itself."""
    if modalities == AUDIO_VISUAL:
        import main_CD
        return main_CD.build_parser().parse_args(["--method", method, *flags])
    parser = entry_parser("a generated dataset's entry script")
    add_clip_args(parser.add_argument_group("data"), num_frames=1, audio_seconds=3.0, audio_help="")
    add_shared_args(parser, "the tests", epochs=2, batch_size=4, lr_decay_step=10, modalities=modalities)
    return parser.parse_args(["--method", method, *flags])


def build(args, modalities=AUDIO_VISUAL):
    """The --method of `args` for a dataset with `modalities` (what the runner's build_method does)."""
    return METHODS[args.method](args, [m.name for m in modalities], {m.name: m.tag for m in modalities})


def tiny_batch(n: int = 6, seed: int = 3, modalities=AUDIO_VISUAL):
    """({name: input}, labels cycling over 3 classes): audio-like (n, 1, 32, 24) for single-channel modalities,
    frames (n, 3, 2, 16, 16) for three-channel ones."""
    g = torch.Generator().manual_seed(seed)
    inputs = {}
    for m in modalities:
        channels = IN_CHANNELS[m.name]
        shape = (n, 1, 32, 24) if channels == 1 else (n, 3, 2, 16, 16)
        inputs[m.name] = torch.randn(*shape, generator=g)
    return inputs, torch.arange(n) % 3


def unimodal_run(tmp_path, modality, fusion="concat", mmcosine=False, seed=1, modalities=AUDIO_VISUAL, **extra):
    """A run directory holding the best.pt of a trained-looking uni-modal model on `modality` (`extra`: more
    checkpoint entries), and the model (eval mode): UMT's teachers, UME's members, MSLR's runs."""
    model = tiny_classifier(3, fusion, mmcosine=mmcosine, seed=seed, modalities=modalities)
    model.keep_only(modality)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    run = tmp_path / f"{modality}-{fusion}-{mmcosine}"
    run.mkdir()
    torch.save({"model": model.state_dict(), "model_config": {
        "fusion": fusion, "mmcosine": mmcosine, "n_classes": 3, "scaling": 10.0, "modalities": [modality],
        "dataset_modalities": [m.name for m in modalities]}, **extra}, run / "best.pt")
    return run, model.eval()


def resnet_classifier(n_classes: int = 6, fusion: str = "concat", mmcosine: bool = False, scaling: float = 10.0,
                      **encoders) -> MultiModalClassifier:
    """The audio-visual scripts' model (the ResNet18 pair), or the given encoders (audio=..., visual=...)."""
    from models import AudioEncoder, VisualEncoder
    encoders = {"audio": encoders.get("audio") or AudioEncoder(), "visual": encoders.get("visual") or VisualEncoder()}
    return MultiModalClassifier(n_classes, encoders, fusion, mmcosine=mmcosine, scaling=scaling)
