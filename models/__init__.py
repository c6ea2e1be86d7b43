from .classifier import ModalOutput, MultiModalClassifier
from .encoders import FEATURE_DIM, AudioEncoder, VisualEncoder
from .fusion import FUSIONS

__all__ = ["MultiModalClassifier", "ModalOutput", "AudioEncoder", "VisualEncoder", "FUSIONS", "FEATURE_DIM"]
