"""Detectors: each reads a closed account window and explains what it found."""

from models.detectors.base import Detector, Hit, WindowContext
from models.detectors.drift import BehaviorDrift, PageHinkleyState
from models.detectors.population import PopulationOutlier
from models.detectors.rules import (
    CredentialCompromise,
    KeyRotation,
    LogitProbe,
    ModelPivot,
    TemplatedExtraction,
)

__all__ = [
    "BehaviorDrift", "CredentialCompromise", "Detector", "Hit", "KeyRotation", "LogitProbe", "ModelPivot",
    "PageHinkleyState", "PopulationOutlier", "TemplatedExtraction", "WindowContext",
]
