"""Linear probe of one encoder of a trained multi-modal model (the paper's A-probe / V-probe; any modality).

    python scripts/linear_probe.py --ckpt runs/cremad/<run>/best.pt --modality audio
    python scripts/linear_probe.py --ckpt runs/cremad/<run>/best.pt --modality visual --data_root /path/to/CREMA-D

The chosen encoder is frozen; its features of the train split (test-time transforms, no
augmentation) train a linear classifier, whose accuracy on the test split is reported and
written to linear_probe_<modality>_<checkpoint>.json beside the checkpoint. A weak modality
that joint training left under-optimised shows up as a low probe accuracy.
"""
import argparse
import importlib
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dataset.errors import DataError, first_line_of  # noqa: E402
from utils.args import restore_settings  # noqa: E402
from utils.build import build_model, match_checkpoint_architecture, resolve_device  # noqa: E402
from utils.checkpoint import load_checkpoint, load_model_state  # noqa: E402
from utils.engine import to_device  # noqa: E402
from utils.sampling import make_loader  # noqa: E402

# checkpoint's dataset name -> the entry script that reads it
ENTRY_SCRIPTS = {"cremad": "main_CD", "ssw60": "main_SSW", "ks": "main_KS", "ave": "main_AVE", "vggsound": "main_VGG",
                 "ucf": "main_UCF", "mosei": "main_MOSEI", "food101": "main_Food"}


@torch.no_grad()
def encode(features, dataset, modalities, device, batch_size, num_workers):
    """features({name: input}) -> (B, d) for every clip of `dataset`, with the labels."""
    loader = make_loader(dataset, batch_size, list(range(len(dataset))), num_workers, device.type == "cuda")
    feats, labels = [], []
    for batch in loader:
        inputs, y = to_device(batch, modalities, device)
        feats.append(features(inputs).float().cpu())
        labels.append(y.cpu())
    return torch.cat(feats), torch.cat(labels)


def fit_linear(train_x, train_y, n_classes, epochs, lr, seed=0):
    """Full-batch Adam on standardised features: deterministic and quick for a few thousand clips."""
    torch.manual_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    head = torch.nn.Linear(train_x.shape[1], n_classes)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-4)
    x = (train_x - mean) / std
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(head(x), train_y).backward()
        opt.step()
    return lambda feats: head((feats - mean) / std)


def probe(ckpt_path, modality, data_root=None, epochs=300, lr=1e-2, batch_size=64, num_workers=0, device="auto"):
    ckpt = load_checkpoint(ckpt_path)
    dataset = ckpt.get("dataset", "cremad")
    if dataset not in ENTRY_SCRIPTS:
        raise DataError(f"{ckpt_path} is a {dataset} checkpoint: a linear probe needs test clips of the training "
                        "classes. For VoxCeleb, the per-modality EERs main_Vox.py logs (test_<list>_eer_a / _eer_v) "
                        "show how well each encoder learned")
    entry = importlib.import_module(ENTRY_SCRIPTS[dataset])
    args = entry.build_parser().parse_args([])
    args.device, args.data_root = device, data_root
    # The run's own input and model settings, as evaluation restores them; --data_root may be typed.
    restore_settings(args, ckpt["args"], {"data_root"} if data_root is not None else set())
    modalities = entry.SOURCE.modalities
    if modality not in [m.name for m in modalities]:
        raise DataError(f"--modality {modality}: {ckpt_path} has the modalities "
                        f"{', '.join(m.name for m in modalities)}; probe one of them")
    data = entry.SOURCE.build(args, True)
    data.train = data.train.evaluation_view()  # features without augmentation (and the test-time audio crop)
    model = build_model(args, len(data.classes), entry.SOURCE.encoders(args))
    match_checkpoint_architecture(model, ckpt["model_config"])
    load_model_state(model, ckpt["model"], ckpt_path)
    device = resolve_device(args)
    model.to(device).eval().requires_grad_(False)
    if model.mid_fusion is None:  # the encoder alone gives its features
        features = lambda inputs: model.encoders[modality](inputs[modality])  # noqa: E731
    else:  # cross-modal modules inside the encoders: their features depend on every input
        features = lambda inputs: model.encode(inputs)[modality]  # noqa: E731
    train_x, train_y = encode(features, data.train, modalities, device, batch_size, num_workers)
    test_x, test_y = encode(features, data.test, modalities, device, batch_size, num_workers)
    classify = fit_linear(train_x, train_y, len(data.classes), epochs, lr)
    with torch.no_grad():
        train_acc = (classify(train_x).argmax(1) == train_y).double().mean().item() * 100
        test_acc = (classify(test_x).argmax(1) == test_y).double().mean().item() * 100
    result = {"checkpoint": str(ckpt_path), "modality": modality, "epoch": ckpt["epoch"], "train_acc": train_acc,
              "test_acc": test_acc, "train_count": len(train_y), "test_count": len(test_y), "probe_epochs": epochs}
    out = Path(ckpt_path).with_name(f"linear_probe_{modality}_{Path(ckpt_path).stem}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result, test_x


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a best.pt / last.pt of any entry script")
    parser.add_argument("--modality", required=True, help="the encoder to probe: one of the run's modalities "
                                                          "(audio / visual; rgb / flow for main_UCF.py)")
    parser.add_argument("--data_root", default=None, help="override the data root stored in the checkpoint")
    parser.add_argument("--epochs", type=int, default=300, help="full-batch steps of the linear classifier")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--batch_size", type=int, default=64, help="batch for feature extraction")
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    try:
        result, _ = probe(args.ckpt, args.modality, args.data_root, args.epochs, args.lr, args.batch_size,
                          args.num_workers, args.device)
    except DataError as err:
        print(f"error: {first_line_of(err)}", file=sys.stderr)
        return 2
    print(f"{args.modality[0].upper()}-probe of {args.ckpt} (epoch {result['epoch']}): "
          f"test accuracy {result['test_acc']:.2f}% (train {result['train_acc']:.2f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
