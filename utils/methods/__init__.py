"""Balancing methods, by the name --method takes."""
from .agm import AGM
from .amco import AMCo
from .arl import ARL
from .aug import AUG
from .base import Method
from .bss import BSS
from .cggm import CGGM
from .cml import CML
from .dgl import DGL
from .dimml import DIMML
from .g2d import G2D
from .gblending import GBlending
from .greedy import Greedy
from .inforeg import InfoReg
from .iprm import IPRM
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
from .remix import Remix
from .umt import UME, UMT
from .unimodal import AudioOnly, Unimodal, VisualOnly
from .valuation import ModalityLevel, SampleLevel

METHODS = {cls.name: cls for cls in (Method, Unimodal, AudioOnly, VisualOnly, OGM, OGMGE, GBlending, Greedy, MSLR,
                                     MMPareto, PMR, AGM, InfoReg, MBSD, CML, OPM, UMT, UME, MLA, ReconBoost, Relearning,
                                     SampleLevel, ModalityLevel, AMCo, LFM, CGGM, G2D, DGL, ARL, IPRM, Remix, BSS,
                                     DIMML, AUG)}


def build_method(args, modalities) -> Method:
    """The --method for a dataset's `modalities` (dataset.modalities.Modality, in order)."""
    return METHODS[args.method](args, [m.name for m in modalities], {m.name: m.tag for m in modalities})
