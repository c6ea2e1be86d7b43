"""Train / evaluate MMCosine and its baselines for VoxCeleb speaker verification.

Trains speaker classification on VoxCeleb2 dev (ResNetSE34V2-style speaker encoder on waveforms,
ResNet34 face encoder on 2-fps face crops) and scores trial lists by the cosine similarity of
the two utterances' fused logit vectors: EER and minDCF per list, also per modality. Defaults
follow the release's main_vox2.py; the release's own lists (data/vox/test_pairs.csv,
veri_test.csv in GeWu-Lab/MMCosine_ICASSP23) read as they are.

    python main_Vox.py --train --fusion_method film --mmcosine True --scaling 10 \\
        --train_list data/VoxCeleb/train_list.csv --trial_lists data/VoxCeleb/vox2_test.csv data/VoxCeleb/vox1_O.csv \\
        --audio_root data/VoxCeleb/wav --visual_root data/VoxCeleb/faces
    python main_Vox.py --ckpt_path runs/voxceleb/<run>/best.pt --trial_lists data/VoxCeleb/vox1_O.csv ...

best.pt is the epoch with the lowest EER on the first trial list.
"""
import argparse
from pathlib import Path

from dataset import DataError
from dataset.voxceleb import EVAL_CROPS, FACE_PICKS, VoxUtterances, read_train_list, read_trial_lists
from models.speaker_encoders import BLOCK_ORDERS, POOLINGS, FaceEncoder, SpeakerEncoder
from utils import trials
from utils.args import add_list_check_args, add_shared_args, entry_parser, str2bool
from utils.cli import run_main
from utils.datasets import check_lists
from utils.flag_types import IMAGE_SIDE, MEL_BANDS, POSITIVE_INT, SECONDS
from utils.runner import DataSource, Datasets, Selection, eval_loader_for, per_process_batch
from utils.sampling import SpeakerBatchSampler


def build_parser() -> argparse.ArgumentParser:
    parser = entry_parser(__doc__)
    g = parser.add_argument_group("VoxCeleb data")
    g.add_argument("--train_list", default="data/VoxCeleb/train_list.csv",
                   help="rows <wav path>,<frames dir>,<speaker id>,<frame count>")
    g.add_argument("--trial_lists", nargs="+", default=["data/VoxCeleb/vox2_test.csv", "data/VoxCeleb/vox1_O.csv"],
                   help="rows <0|1>,<utt1>,<utt2> (or the official space-separated lists); the first picks best.pt")
    g.add_argument("--audio_root", default="data/VoxCeleb/wav", help="the lists' wav paths are relative to this")
    g.add_argument("--visual_root", default="data/VoxCeleb/faces", help="the lists' face-crop folders are relative to this")
    g.add_argument("--audio_seconds", type=SECONDS, default=2.015,
                   help="training crop of each waveform, at a random position (the release's 200 frames: 32,240 samples)")
    g.add_argument("--eval_seconds", type=SECONDS, default=4.015,
                   help="waveform scored at test time (the release's 400 frames: 64,240 samples)")
    g.add_argument("--eval_crop", choices=list(EVAL_CROPS), default="start",
                   help="where the test crop starts: start (the release's test loaders) or centre")
    g.add_argument("--num_frames", type=POSITIVE_INT, default=2, help="face crops per training utterance, spread evenly")
    g.add_argument("--eval_faces", choices=list(FACE_PICKS), default="release",
                   help="face crops of a test utterance: release = the third one alone (0000002.png, as main_vox2.py); "
                        "even = --num_frames spread evenly")
    g.add_argument("--image_size", type=IMAGE_SIDE, default=224, help="face crop side fed to the ResNet34")
    g.add_argument("--n_mels", type=MEL_BANDS, default=None,
                   help="mel bands of the speaker encoder's front end (default 40 as the release, or the checkpoint's)")
    g.add_argument("--speaker_pooling", choices=list(POOLINGS), default=None,
                   help="speaker encoder pooling: sap (self-attentive, the release) or asp (attentive statistics) "
                        "(default sap, or the checkpoint's)")
    g.add_argument("--speaker_block_order", choices=list(BLOCK_ORDERS), default=None,
                   help="order inside the speaker encoder's stem and blocks: conv_relu_bn (the release) or "
                        "conv_bn_relu (default conv_relu_bn, or the checkpoint's)")
    g.add_argument("--speaker_batches", type=str2bool, default=False, metavar="BOOL",
                   help="batches of distinct speakers with at most --max_per_speaker utterances of one speaker an "
                        "epoch; off: every utterance once an epoch in seeded random order (the release's shuffle)")
    g.add_argument("--max_per_speaker", type=POSITIVE_INT, default=500,
                   help="with --speaker_batches: utterances of one speaker used per epoch")
    add_list_check_args(g)
    add_shared_args(parser, "the released main_vox2.py", epochs=200, batch_size=256, lr_decay_step=70)
    return parser


def build_datasets(args, with_train: bool) -> Datasets:
    if args.cache_dir is not None:
        raise DataError("--cache_dir is for the spectrogram datasets; VoxCeleb reads fresh waveform crops each epoch")
    if args.val_split is not None:
        raise DataError("--val_split is for the classification sets; main_Vox.py chooses best.pt on the first of "
                        "--trial_lists, so put a validation list first (e.g. the release's VoxCeleb2 test_pairs.csv) "
                        "and the test list after it")
    test = read_trial_lists([Path(p) for p in args.trial_lists], args.audio_root, args.visual_root,
                            args.eval_seconds, args.num_frames, args.image_size, args.eval_crop, args.eval_faces)
    if with_train:
        speakers, items = read_train_list(Path(args.train_list), args.audio_root, args.visual_root)
        train = VoxUtterances([u for u, _ in items], [label for _, label in items], train=True,
                              seconds=args.audio_seconds, num_frames=args.num_frames, image_size=args.image_size)
        notes = [f"{len(speakers)} speakers, {len(items)} training utterances; "
                 f"{len(test)} test utterances in {len(test.lists)} trial list(s): {', '.join(test.lists)}"]
        # an utterance listed twice trains twice an epoch; one in a trial list scores a model that trained on it
        notes += check_lists({"train": [(str(u.wav), label) for u, label in items],
                              "trial lists'": [(str(u.wav), 0) for u in test.utterances.utterances]},
                             args.allow_overlap, args.allow_duplicates)
        return Datasets(classes=speakers, test=test, train=train, notes=notes)
    # Evaluating a checkpoint: the speakers (classes) come from the checkpoint, not from a train list.
    return Datasets(classes=[], test=test)


def build_encoders(args) -> dict:
    speaker = SpeakerEncoder(n_mels=args.n_mels, pooling=args.speaker_pooling, block_order=args.speaker_block_order)
    return {"audio": speaker, "visual": FaceEncoder(bn_init=args.bn_init)}


def speaker_batches(args, train, num_replicas: int, rank: int):
    """SpeakerBatchSampler with --speaker_batches; None (the runner's seeded shuffle) otherwise."""
    if not args.speaker_batches:
        return None
    return SpeakerBatchSampler(train.labels, per_process_batch(args), args.max_per_speaker, args.random_seed,
                               num_replicas, rank)


def verification_test(args, model, eval_model, trial_set, device, precision, show, modalities):
    loader = eval_loader_for(args, trial_set, device)
    embeddings = trials.embed(eval_model, loader, len(trial_set), device, precision, show, args.channels_last,
                              modalities)
    # What --save_features keeps: every test utterance's logit vectors, enough to re-score any trial list.
    features = {f"logits{suffix}": vectors for suffix, vectors in embeddings.items()}
    features["utterances"] = list(trial_set.keys)
    return trials.verification_stats(trial_set, embeddings), features


SOURCE = DataSource(name="voxceleb", script="main_Vox.py", build=build_datasets, encoders=build_encoders,
                    train_batches=speaker_batches,
                    test=verification_test, describe_test=trials.describe,
                    selection=lambda args: Selection("eer", higher_is_better=False),
                    # the release's main_vox2.py and models/vox/ResNetSE34V2_audio.py
                    model_defaults={"fusion_method": "film", "n_mels": 40, "speaker_pooling": "sap",
                                    "speaker_block_order": "conv_relu_bn"})


def main(argv=None):
    return run_main(build_parser(), SOURCE, argv)


if __name__ == "__main__":
    main()
