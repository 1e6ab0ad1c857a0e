"""Training entry points, one keyword-only function per stage, each returning a result object."""

from .dense import FitReport, TrainingError, TrainResult, fit, train_dense

__all__ = ["FitReport", "TrainResult", "TrainingError", "fit", "train_dense"]
