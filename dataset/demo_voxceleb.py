"""A small synthetic speaker-verification set in the VoxCeleb layout main_Vox.py reads:

    wav/<speaker>/<video>/<utt>.wav              16 kHz mono
    faces/<speaker>/<video>/<utt>/00001.jpg ...  face crops at "2 fps"
    train_list.csv    <wav path>,<frames dir>,<speaker id>,<frame count>   (training speakers)
    vox2_test.csv     <0|1>,<utt1>,<utt2>          trials among held-out speakers (comma-separated)
    vox1_O.txt        0|1 utt1 utt2                trials among other held-out speakers (space-separated,
                                                   like the official veri_test2.txt)

Each speaker has a voice (a harmonic tone at its own pitch, +-6 % per utterance, in noise) and
a face (a blob of its own colour, shifted by the "lighting" of each shot, on a noisy background,
placed at random). Test speakers are
not training speakers, so verification relies on how the logit vectors of unseen voices and
faces resemble each other, as in the real task. Deterministic in --seed.
"""
import csv
import itertools
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

SAMPLE_RATE = 16000


def _voice(pitch: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(rng.uniform(1.0, 3.0) * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = pitch * rng.uniform(0.94, 1.06)
    tone = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 5))
    return (rng.uniform(0.05, 0.15) * tone + rng.normal(0, 0.15, t.shape)).astype(np.float32)


def _face(colour: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    frame = rng.normal(110, 45, (size, size, 3))
    colour = colour + rng.normal(0, 25, 3)  # lighting differs from shot to shot
    radius = size // 3
    cy, cx = rng.integers(radius, size - radius, 2)
    yy, xx = np.mgrid[:size, :size]
    blob = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
    frame[blob] = colour + rng.normal(0, 40, (blob.sum(), 3))
    return np.clip(frame, 0, 255).astype(np.uint8)


def _write_speaker(out: Path, speaker: str, n_utterances: int, rng: np.random.Generator, image_size: int):
    """Writes the speaker's utterances; returns [(utterance key, frame count)]."""
    pitch, colour = float(np.exp(rng.uniform(np.log(120), np.log(600)))), rng.uniform(30, 230, 3)
    written = []
    for u in range(n_utterances):
        key = f"{speaker}/vid{u // 2:02d}/{u + 1:05d}"
        wav = out / "wav" / f"{key}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(wav, _voice(pitch, rng), SAMPLE_RATE, subtype="PCM_16")
        faces = out / "faces" / key
        faces.mkdir(parents=True, exist_ok=True)
        n_frames = int(rng.integers(2, 6))
        for j in range(n_frames):
            Image.fromarray(_face(colour, image_size, rng)).save(faces / f"{j + 1:05d}.jpg", quality=90)
        written.append((key, n_frames))
    return written


def _trials(utterances_by_speaker):
    """Every pair of utterances: 1 for the same speaker, 0 otherwise."""
    keyed = [(spk, key) for spk, keys in utterances_by_speaker.items() for key, _ in keys]
    return [(int(a[0] == b[0]), f"{a[1]}.wav", f"{b[1]}.wav") for a, b in itertools.combinations(keyed, 2)]


def write_voxceleb_demo(out: Path, train_speakers: int = 12, utterances_per_speaker: int = 4,
                        test_speakers: int = 6, test_utterances: int = 3, image_size: int = 48,
                        seed: int = 0) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with open(out / "train_list.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        for s in range(train_speakers):
            speaker = f"id{s + 1:05d}"
            for key, n_frames in _write_speaker(out, speaker, utterances_per_speaker, rng, image_size):
                writer.writerow([f"{key}.wav", key, speaker, n_frames])
    for list_file, first_id, separator in (("vox2_test.csv", 90001, ","), ("vox1_O.txt", 10001, " ")):
        speakers = {f"id{first_id + s}": None for s in range(test_speakers)}
        for speaker in speakers:
            speakers[speaker] = _write_speaker(out, speaker, test_utterances, rng, image_size)
        rows = [separator.join(map(str, trial)) for trial in _trials(speakers)]
        (out / list_file).write_text("\n".join(rows) + "\n")
    return out
