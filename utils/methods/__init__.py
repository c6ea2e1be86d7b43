"""Balancing methods, by the name --method takes."""
from .base import Method
from .gblending import GBlending
from .greedy import Greedy
from .mslr import MSLR
from .ogm import OGM, OGMGE
from .unimodal import AudioOnly, VisualOnly

METHODS = {cls.name: cls for cls in (Method, AudioOnly, VisualOnly, OGM, OGMGE, GBlending, Greedy, MSLR)}


def build_method(args) -> Method:
    return METHODS[args.method](args)
