from .av_classifier import AVClassifier, AVOutput
from .encoders import FEATURE_DIM, AudioEncoder, VisualEncoder
from .fusion import FUSIONS

__all__ = ["AVClassifier", "AVOutput", "AudioEncoder", "VisualEncoder", "FUSIONS", "FEATURE_DIM"]
