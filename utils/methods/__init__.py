"""Balancing methods, by the name --method takes."""
from .agm import AGM
from .base import Method
from .cml import CML
from .gblending import GBlending
from .greedy import Greedy
from .inforeg import InfoReg
from .mbsd import MBSD
from .mmpareto import MMPareto
from .mslr import MSLR
from .ogm import OGM, OGMGE
from .opm import OPM
from .pmr import PMR
from .umt import UME, UMT
from .unimodal import AudioOnly, VisualOnly

METHODS = {cls.name: cls for cls in (Method, AudioOnly, VisualOnly, OGM, OGMGE, GBlending, Greedy, MSLR,
                                     MMPareto, PMR, AGM, InfoReg, MBSD, CML, OPM, UMT, UME)}


def build_method(args) -> Method:
    return METHODS[args.method](args)
