"""Every numeric flag of every entry script is range-checked at parse time: one `error:` line
naming the flag, the value and the range, exit status 2, no traceback."""
import pytest
import torch

import main_CD
import main_AVE
import main_KS
import main_SSW
import main_VGG
import main_Vox
from utils.flag_types import Bounded

ENTRY_SCRIPTS = (main_CD, main_SSW, main_Vox, main_KS, main_AVE, main_VGG)


def numeric_flags(module):
    """(flag, type, how many values it takes)."""
    for action in module.build_parser()._actions:
        if action.option_strings and (action.type in (int, float) or isinstance(action.type, Bounded)):
            yield action.option_strings[0], action.type, action.nargs if isinstance(action.nargs, int) else 1


def test_no_numeric_flag_is_left_unchecked():
    for module in ENTRY_SCRIPTS:
        unchecked = [flag for flag, kind, _ in numeric_flags(module) if not isinstance(kind, Bounded)]
        assert not unchecked, (module.__name__, unchecked)


@pytest.mark.parametrize("module", ENTRY_SCRIPTS, ids=lambda m: m.__name__)
def test_every_numeric_flag_refuses_out_of_range_values(module, capsys):
    flags = list(numeric_flags(module))
    assert len(flags) >= 25
    for flag, kind, count in flags:
        for value in (kind.out_of_range(), "x"):
            with pytest.raises(SystemExit) as exit_info:
                module.main([flag] + [value] * count)
            err = capsys.readouterr().err.strip().splitlines()
            assert exit_info.value.code == 2 and len(err) == 1, (flag, value, err)
            assert err[0].startswith(f"error: argument {flag}: {value!r}" if value == "x" else
                                     f"error: argument {flag}: {value} is out of range: expected"), err[0]


@pytest.mark.parametrize("argv,message", [
    (["--batch_size", "1"], "BatchNorm needs at least 2 samples"),
    (["--image_size", "1"], "at least 16 pixels"),
    (["--num_frames", "0"], "expected an integer >= 1"),
    (["--epochs", "-1"], "expected an integer >= 1"),
    (["--scaling", "-10"], "expected a number > 0"),
    (["--learning_rate", "inf"], "is not finite"),
    (["--learning_rate", "-0.01"], "expected a number >= 0"),
    (["--modulation_starts", "5", "--modulation_ends", "3"], "--modulation_ends 3 is before --modulation_starts 5"),
    (["--gpu_ids", "first"], "--gpu_ids first: expected GPU numbers"),
    (["--device", "tpu"], "--device tpu: not a device"),
])
def test_named_bad_flags_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_CD.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_CD.main(["--device", "cuda"])
    assert exit_info.value.code == 2 and "no CUDA GPU is visible" in capsys.readouterr().err
