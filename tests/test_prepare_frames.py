"""scripts/prepare_cremad_frames.py on generated .flv videos."""
import sys

import cv2
import pytest
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


def write_mp4_with_audio(path, seconds=2, fps=25, rate=22050, frame_at=None):
    """An mp4 with an mpeg4 video track and an AAC audio track (a 440 Hz tone), written with PyAV.
    frame_at(i) -> RGB uint8 frame i (even sides); default: flat 64x48 frames getting brighter."""
    av = pytest.importorskip("av")
    frame_at = frame_at or (lambda i: np.full((48, 64, 3), 4 * i, np.uint8))
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.height, video.width = frame_at(0).shape[:2]
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=rate)
        audio.layout = "stereo"
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(frame_at(i), format="rgb24")
            for packet in video.encode(frame):
                out.mux(packet)
        t = np.arange(seconds * rate) / rate
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(wave), 1024):
            chunk = np.repeat(wave[None, start:start + 1024], 2, axis=0)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = rate, start
            for packet in audio.encode(frame):
                out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode():
                out.mux(packet)


def test_prepare_ssw60_writes_frames_and_16k_mono_wavs(tmp_path, capsys):
    import soundfile
    import prepare_ssw60
    (tmp_path / "video_ml").mkdir()
    (tmp_path / "video_ml.csv").write_text("asset_id,label,split\n11,0,train\n12,1,test\n13,1,test\n")
    write_mp4_with_audio(tmp_path / "video_ml" / "11.mp4")
    write_mp4_with_audio(tmp_path / "video_ml" / "12.mp4")          # 13.mp4 is missing
    assert prepare_ssw60.main(["--data_root", str(tmp_path)]) == 1
    assert sorted(p.name for p in (tmp_path / "frames" / "11").iterdir()) == ["00001.jpg", "00002.jpg"]
    wave, rate = soundfile.read(tmp_path / "audio" / "12.wav")
    assert rate == 16000 and wave.ndim == 1 and abs(len(wave) / rate - 2.0) < 0.1
    spectrum = np.abs(np.fft.rfft(wave[4000:20000]))
    assert abs(np.argmax(spectrum) * rate / 16000 - 440) < 5  # the tone survived decoding and resampling
    assert "13.mp4" in (tmp_path / "failed.txt").read_text()
    capsys.readouterr()
    prepare_ssw60.main(["--data_root", str(tmp_path)])
    assert "2 already done" in capsys.readouterr().out
