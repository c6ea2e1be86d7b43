"""torchrun with 2 CPU processes (gloo) against one process on the same data and seed."""
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, TINY_FLAGS

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def launch_together(*cmds):
    """Start the commands side by side (one thread each, so the two cores are shared) and wait for all;
    returns their finished processes (stdout as text)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for cmd in cmds]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, out[-2000:] + err[-4000:]
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def launch_one_and_two(script, out_dir, *script_args):
    """The helper script alone and under torchrun with 2 processes, side by side; returns what each saved."""
    launch_together([sys.executable, script, str(out_dir / "one.pt"), *script_args],
                    [*TORCHRUN, script, str(out_dir / "two.pt"), *script_args])
    return torch.load(out_dir / "one.pt"), torch.load(out_dir / "two.pt")


def metrics(run_dir):
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_compute_the_gradients_of_one(tmp_path):
    one_all, two_all = launch_one_and_two(str(ROOT / "tests" / "helpers" / "ddp_one_step.py"), tmp_path,
                                          "concat", "gated")
    for fusion in ("concat", "gated"):
        for kind in ("grads", "buffers"):
            for name, ref in one_all[fusion][kind].items():
                assert torch.allclose(two_all[fusion][kind][name], ref, rtol=1e-7, atol=1e-10), (fusion, kind, name)


def test_torchrun_run_matches_single_process(tmp_path, demo_root):
    # lr 0: batches, crops, synchronised BatchNorm statistics and metric reductions must agree
    # exactly; that the weight updates agree is the gradient test above.
    flags = ["--train", "--data_root", str(demo_root), "--epochs", "2", "--mmcosine", "True",
             *TINY_FLAGS, "--learning_rate", "0", "--device", "cpu"]  # gloo on CPU, also where a GPU exists
    _, proc = launch_together([sys.executable, "main_CD.py", *flags, "--run_dir", str(tmp_path / "one")],
                              [*TORCHRUN, "main_CD.py", *flags, "--run_dir", str(tmp_path / "two")])
    one, two = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert len(one) == len(two) == 2
    for a, b in zip(one, two):
        assert b["test_count"] == 6 and b["train_count"] == 18  # exact sets, no padded duplicates
        for key, value in a.items():
            if isinstance(value, float) and not key.endswith("seconds"):
                # Mean ground-truth logits are means of s * cos (s = 10) that can sit near 0, where float32
                # SyncBN sums leave ~1e-4 absolute: their tolerance is relative to the scale, 5e-5 of s.
                assert b[key] == pytest.approx(value, rel=1e-3, abs=5e-4 if "gt_logit" in key else 1e-5), key
    # One set of outputs: one events file, one line per epoch, one progress line per epoch.
    assert len(list((tmp_path / "two" / "tensorboard").iterdir())) == 1
    assert proc.stdout.count("epoch 2/2") == 1
    # Evaluating the checkpoint on 2 processes gives the single-process numbers.
    ckpt = str(tmp_path / "two" / "best.pt")
    evaluate = ["main_CD.py", "--ckpt_path", ckpt, "--data_root", str(demo_root), "--device", "cpu", *TINY_FLAGS]
    single, double = launch_together([sys.executable, *evaluate], [*TORCHRUN, *evaluate])
    assert single.stdout.strip().splitlines()[-1] == double.stdout.strip().splitlines()[-1]


def test_a_stop_signalled_to_one_process_stops_all_after_one_step_and_resumes_exactly(tmp_path, demo_root):
    """SIGTERM reaching rank 1 alone during epoch 2: both processes stop after the same step, last.pt holds each
    one's share of the epoch so far, and a torchrun --resume ends with the numbers of an uninterrupted torchrun run."""
    flags = ["--train", "--data_root", str(demo_root), "--epochs", "2", *TINY_FLAGS, "--device", "cpu"]
    helper = str(ROOT / "tests" / "helpers" / "stop_on_one_rank.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STOP_EPOCH": "2"}
    stopped = subprocess.run([*TORCHRUN, helper, *flags, "--run_dir", str(tmp_path / "stopped")], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=400)
    assert stopped.returncode != 0 and "terminated (SIGTERM) in epoch 2 after step 1 of" in stopped.stderr, \
        stopped.stderr[-3000:]
    partial = torch.load(tmp_path / "stopped" / "last.pt", weights_only=True)["partial"]
    assert partial["steps"] == 1 and len(partial["processes"]) == 2
    launch_together([*TORCHRUN, "main_CD.py", "--resume", str(tmp_path / "stopped"), "--device", "cpu"],
                    [*TORCHRUN, "main_CD.py", *flags, "--run_dir", str(tmp_path / "straight")])
    resumed, straight = metrics(tmp_path / "stopped"), metrics(tmp_path / "straight")
    assert [r["epoch"] for r in resumed] == [1, 2]
    for key, value in straight[-1].items():
        if isinstance(value, float) and not key.endswith("seconds"):
            assert resumed[-1][key] == pytest.approx(value, rel=1e-6, abs=1e-7), key


# NAME@EPOCH: the epoch whose start and first two steps are compared (AMCo masks from its second epoch on,
# ReconBoost's epoch 9 is the visual stage boosting against the audio member).
# The 2024-2025 methods that run under torchrun: DGL, ARL in its warm-up (epoch 1) and after it (epoch 7), CGGM, IPRM.
TORCHRUN_METHODS = ["mmpareto", "agm", "inforeg", "opm", "mbsd", "mla", "amco@2", "reconboost@9", "lfm", "sample_level",
                    "dgl", "arl@1", "arl@7", "cggm", "iprm"]


def test_two_processes_train_the_methods_as_one(tmp_path):
    """Methods that run under torchrun (the others refuse it) update the weights as one process does."""
    # torchrun alone on the two cores (its ranks wait on each other at every collective), then the
    # one-process reference in this process
    from helpers.ddp_method_step import train_methods
    launch_together([*TORCHRUN, str(ROOT / "tests" / "helpers" / "ddp_method_step.py"), str(tmp_path / "two.pt"),
                     *TORCHRUN_METHODS])
    one_all, two_all = train_methods(TORCHRUN_METHODS), torch.load(tmp_path / "two.pt")
    for method in TORCHRUN_METHODS:
        one, two = one_all[method], two_all[method]
        for mine, theirs in zip(one["logged"], two["logged"]):
            assert theirs == pytest.approx(mine, rel=1e-6), method
        for name, ref in one["params"].items():
            # atol 1e-8: the methods' batch scores are float32 sums (as in training), which round differently
            # over 8 samples than over 4 + 4 (OPM's drop probabilities move by ~3e-8, its weights by ~4e-9).
            assert torch.allclose(two["params"][name], ref, rtol=1e-6, atol=1e-8), (method, name)
    # ARL scales the encoders' gradients after its warm-up only; CGGM's direction loss enters from the second step
    assert one_all["arl@7"]["logged"][1]["arl_scale_a"] > 1 and one_all["arl@1"]["logged"][1]["arl_scale_a"] == 1
    assert "cggm_l_gm" in one_all["cggm"]["logged"][2]


def test_methods_not_checked_under_torchrun_refuse_it(monkeypatch):
    from utils.methods import METHODS, build_method
    from utils import distributed
    from dataset.errors import DataError
    from types import SimpleNamespace
    from dataset.modalities import AUDIO_VISUAL
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    for name in ("pmr", "cml", "umt", "ume"):
        with pytest.raises(DataError, match="without torchrun"):
            build_method(SimpleNamespace(method=name, amp="off"), AUDIO_VISUAL)
    assert all(METHODS[name.split("@")[0]].single_process_only is None for name in TORCHRUN_METHODS)
