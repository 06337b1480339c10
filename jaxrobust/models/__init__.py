"""Flax NNX classifiers (encoders and decoders) with weights imported from Hugging Face checkpoints."""

from jaxrobust.models.config import EncoderConfig
from jaxrobust.models.encoder import ClassifierOutput, SequenceClassifier
from jaxrobust.models.loading import LoadedClassifier, export_classifier, load_classifier, parameter_count
from jaxrobust.models.registry import FAMILIES, Family

__all__ = [
    "FAMILIES",
    "Family",
    "ClassifierOutput",
    "EncoderConfig",
    "LoadedClassifier",
    "SequenceClassifier",
    "export_classifier",
    "load_classifier",
    "parameter_count",
]
