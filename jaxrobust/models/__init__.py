"""Flax NNX classifiers (encoders and decoders) with weights imported from Hugging Face checkpoints."""

from jaxrobust.models.config import FAMILIES, EncoderConfig
from jaxrobust.models.encoder import ClassifierOutput, SequenceClassifier
from jaxrobust.models.loading import LoadedClassifier, export_classifier, load_classifier

__all__ = [
    "FAMILIES",
    "ClassifierOutput",
    "EncoderConfig",
    "LoadedClassifier",
    "SequenceClassifier",
    "export_classifier",
    "load_classifier",
]
