"""Face alignment geometry, the face-track filling rule, and scripts/prepare_voxceleb.py with the
real MTCNN detector on matplotlib's bundled Grace Hopper photo (a real face) inside generated mp4s."""
import sys

import cv2
import numpy as np
import pytest
import soundfile
from PIL import Image

from conftest import ROOT
from dataset.faces import Face, align_crop, alignment_matrix, faces_for_track
from dataset.voxceleb import read_train_list
from test_prepare_frames import write_mp4_with_audio

sys.path.insert(0, str(ROOT / "scripts"))
import prepare_voxceleb  # noqa: E402


def apply(matrix, points):
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_alignment_levels_the_eyes_and_frames_the_box():
    # A face box 80 px wide, 100 px tall, centred at (150, 120); the eyes tilted by 20 degrees.
    tilt = np.deg2rad(20)
    centre = np.array([150.0, 120.0])
    eyes = centre + 20 * np.array([[-np.cos(tilt), -np.sin(tilt)], [np.cos(tilt), np.sin(tilt)]]) - [0, 15]
    face = Face(np.array([110.0, 70.0, 190.0, 170.0]), np.vstack([eyes, [[150, 125], [135, 145], [165, 145]]]), 0.99)
    m = alignment_matrix(face, size=64, margin=0.25)
    left, right = apply(m, eyes)
    assert left[1] == pytest.approx(right[1]) and right[0] > left[0]        # level, not mirrored
    np.testing.assert_allclose(apply(m, centre[None]), [[32, 32]])          # box centre -> crop centre
    assert np.linalg.norm(right - left) == pytest.approx(40 * 64 / (100 * 1.25))  # longer side + margin fills 64
    image = np.zeros((240, 300, 3), np.uint8)
    assert align_crop(image, face, 64).shape == (64, 64, 3)


def test_frames_without_a_detection_take_the_nearest_earlier_one():
    a, b = (Face(np.full(4, k, float), np.zeros((5, 2)), 1.0) for k in (1, 2))
    assert faces_for_track([None, a, None, b, None]) == [a, a, a, b, b]
    with pytest.raises(RuntimeError, match="no face found"):
        faces_for_track([None, None])


@pytest.fixture(scope="module")
def detector():
    pytest.importorskip("facenet_pytorch", reason="optional face detector: bash scripts/install_face_detector.sh")
    from dataset.faces import MTCNNDetector
    return MTCNNDetector()


def hopper(angle: float = 0.0) -> np.ndarray:
    import matplotlib.cbook
    rgb = np.array(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    rgb = cv2.resize(rgb, (256, 300), interpolation=cv2.INTER_AREA)
    rotation = cv2.getRotationMatrix2D((128, 150), angle, 1.0)
    return cv2.warpAffine(rgb, rotation, (256, 300), borderMode=cv2.BORDER_REPLICATE)


def test_mtcnn_crop_of_a_tilted_face_is_level_and_centred(detector):
    face = detector(hopper(angle=15))
    assert face is not None and face.score > 0.95
    crop = align_crop(hopper(angle=15), face, 160)
    again = detector(crop)
    (lx, ly), (rx, ry) = again.landmarks[:2]
    assert abs(np.degrees(np.arctan2(ry - ly, rx - lx))) < 4                 # eyes level after alignment
    x1, y1, x2, y2 = again.box
    assert abs((x1 + x2) / 2 - 80) < 16 and abs((y1 + y2) / 2 - 80) < 20    # face in the middle of the crop


def test_prepare_voxceleb_writes_wavs_face_crops_and_a_train_list(detector, tmp_path, capsys):
    videos, out = tmp_path / "mp4", tmp_path / "VoxCeleb"
    for key in ("id00012/abc/00001", "id00012/abc/00002", "id00077/xyz/00001"):
        (videos / key).parent.mkdir(parents=True, exist_ok=True)
        write_mp4_with_audio(videos / f"{key}.mp4", seconds=2, fps=10, frame_at=lambda i: hopper(angle=2 * i))
    (videos / "id00099" / "nof").mkdir(parents=True)
    write_mp4_with_audio(videos / "id00099" / "nof" / "00001.mp4", seconds=1, fps=10,
                         frame_at=lambda i: np.full((300, 256, 3), 90, np.uint8))   # no face anywhere
    argv = ["--videos", str(videos), "--out", str(out), "--fps", "2", "--crop_size", "96", "--list", "train_list.csv"]
    assert prepare_voxceleb.main(argv, detector=detector) == 1
    crops = sorted((out / "faces" / "id00012" / "abc" / "00001").iterdir())
    assert [p.name for p in crops] == ["00001.jpg", "00002.jpg", "00003.jpg", "00004.jpg"]
    assert cv2.imread(str(crops[0])).shape == (96, 96, 3)
    wave, rate = soundfile.read(out / "wav" / "id00077" / "xyz" / "00001.wav")
    assert rate == 16000 and wave.ndim == 1 and abs(len(wave) / rate - 2.0) < 0.1
    failed = (out / "failed.txt").read_text()
    assert "id00099/nof/00001: no face found" in failed and not (out / "faces" / "id00099" / "nof" / "00001").exists()
    # The train list holds the three finished utterances, in the layout main_Vox.py reads.
    speakers, items = read_train_list(out / "train_list.csv", out / "wav", out / "faces")
    assert speakers == ["id00012", "id00077"] and len(items) == 3
    assert (out / "train_list.csv").read_text().splitlines()[0] == "id00012/abc/00001.wav,id00012/abc/00001,id00012,4"
    capsys.readouterr()
    prepare_voxceleb.main(argv, detector=detector)
    assert "3 already done" in capsys.readouterr().out


def test_missing_detector_or_videos_is_one_clear_error(tmp_path, capsys, monkeypatch):
    assert prepare_voxceleb.main(["--videos", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "video folder not found" in capsys.readouterr().err
    (tmp_path / "v" / "id1" / "a").mkdir(parents=True)
    (tmp_path / "v" / "id1" / "a" / "00001.mp4").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # as if it were not installed
    assert prepare_voxceleb.main(["--videos", str(tmp_path / "v"), "--out", str(tmp_path / "o")]) == 2
    assert "pip install --no-deps facenet-pytorch==2.6.0" in capsys.readouterr().err
