"""Balancing methods, by the name --method takes."""
from .agm import AGM
from .amco import AMCo
from .base import Method
from .cml import CML
from .gblending import GBlending
from .greedy import Greedy
from .inforeg import InfoReg
from .lfm import LFM
from .mbsd import MBSD
from .mla import MLA
from .mmpareto import MMPareto
from .mslr import MSLR
from .ogm import OGM, OGMGE
from .opm import OPM
from .pmr import PMR
from .reconboost import ReconBoost
from .relearning import Relearning
from .umt import UME, UMT
from .unimodal import AudioOnly, Unimodal, VisualOnly
from .valuation import ModalityLevel, SampleLevel

METHODS = {cls.name: cls for cls in (Method, Unimodal, AudioOnly, VisualOnly, OGM, OGMGE, GBlending, Greedy, MSLR,
                                     MMPareto, PMR, AGM, InfoReg, MBSD, CML, OPM, UMT, UME, MLA, ReconBoost, Relearning,
                                     SampleLevel, ModalityLevel, AMCo, LFM)}


def build_method(args, modalities) -> Method:
    """The --method for a dataset's `modalities` (dataset.modalities.Modality, in order)."""
    return METHODS[args.method](args, [m.name for m in modalities], {m.name: m.tag for m in modalities})
