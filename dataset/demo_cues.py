"""The cues every classification demo set is made of (see dataset/demo.py): class k's audio is a tone
whose pitch says k // 2, its frames a low-contrast square whose colour says k."""
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

SAMPLE_RATE = 16000
PAIR_PITCH_HZ = [300.0, 700.0, 1500.0]
CLASS_COLOURS = np.array([[220, 40, 40], [40, 200, 40], [40, 80, 230],
                          [220, 200, 30], [200, 40, 200], [30, 200, 210]], dtype=np.float64)


def synth_wave(label: int, rng: np.random.Generator) -> np.ndarray:
    seconds = rng.uniform(1.0, 2.5)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = PAIR_PITCH_HZ[label // 2] * rng.uniform(0.97, 1.03)
    tone = rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * pitch * t + rng.uniform(0, 2 * np.pi))
    return (tone + rng.normal(0, 0.1, t.shape)).astype(np.float32)


def synth_frame(label: int, size, rng: np.random.Generator) -> np.ndarray:
    """size: side of a square frame, or (height, width)."""
    height, width = (size, size) if isinstance(size, int) else size
    frame = rng.normal(128, 45, (height, width, 3))
    side = min(height, width) // 5
    top, left = rng.integers(0, height - side), rng.integers(0, width - side)
    colour = 0.3 * CLASS_COLOURS[label] + 0.7 * 128  # low contrast against the noise
    frame[top:top + side, left:left + side] = colour + rng.normal(0, 30, (side, side, 3))
    return np.clip(frame, 0, 255).astype(np.uint8)




def write_clip(wav_path: Path, frames_dir: Path, label: int, rng: np.random.Generator, frames: int, image_size) -> None:
    """One demo clip: its wav, then its frames as frames_dir/00001.jpg, ..."""
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(wav_path, synth_wave(label, rng), SAMPLE_RATE, subtype="PCM_16")
    frames_dir.mkdir(parents=True, exist_ok=True)
    for j in range(frames):
        Image.fromarray(synth_frame(label, image_size, rng)).save(frames_dir / f"{j + 1:05d}.jpg")
