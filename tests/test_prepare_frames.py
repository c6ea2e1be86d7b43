"""scripts/prepare_cremad_frames.py on generated .flv videos."""
import sys

import cv2
import numpy as np

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import prepare_cremad_frames  # noqa: E402


def write_video(path, n_frames=45, fps=15.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FLV1"), fps, (64, 48))
    for i in range(n_frames):
        writer.write(np.full((48, 64, 3), 5 * i, np.uint8))
    writer.release()


def test_frames_at_the_chosen_rate_resumable_and_failures_reported(tmp_path, capsys):
    videos = tmp_path / "VideoFlash"
    videos.mkdir()
    write_video(videos / "1001_DFA_ANG_XX.flv")          # 3 s at 15 fps
    (videos / "1001_DFA_HAP_XX.flv").write_bytes(b"broken")
    code = prepare_cremad_frames.main(["--data_root", str(tmp_path), "--fps", "1"])
    out = tmp_path / "Image-01-FPS"
    frames = sorted(p.name for p in (out / "1001_DFA_ANG_XX").iterdir())
    assert frames == ["00001.jpg", "00002.jpg", "00003.jpg"]
    first = cv2.imread(str(out / "1001_DFA_ANG_XX" / "00002.jpg"))
    assert abs(int(first.mean()) - 5 * 15) <= 3           # the frame at t = 1 s
    assert code == 1 and "1001_DFA_HAP_XX.flv" in (out / "failed.txt").read_text()
    assert not (out / "1001_DFA_HAP_XX").exists() and not list(out.glob(".*partial"))
    # A second pass skips the finished clip and retries only the failed one.
    capsys.readouterr()
    prepare_cremad_frames.main(["--data_root", str(tmp_path), "--fps", "1"])
    assert "1 already done" in capsys.readouterr().out
