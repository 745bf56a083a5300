"""``s4.train``: the training loop (:class:`TrainingLoop`, S4TF's, modelled on fastai's
``Learner``), its events and callbacks (:mod:`s4tf_py.train.callbacks`) and its metrics
(:mod:`s4tf_py.train.metrics`).

>>> from s4tf_py.train import metrics
>>> metrics.get("accuracy").name
'accuracy'
>>> from s4tf_py import train
>>> train.Event.UPDATE_START.value, train.CancelTraining is train.CancelFit
('update_start', True)
"""
from . import callbacks, metrics
from .callbacks import (Callback, CancelBatch, CancelEpoch, CancelFit, CancelTraining,
                        Checkpointer, CSVLogger, EarlyStopping, Event, JSONLinesLogger,
                        LossCurve, LRScheduler, ProgressBar, StatisticsRecorder)
from .loop import DynamicLossScale, TrainingLoop

__all__ = ["metrics", "callbacks", "TrainingLoop", "DynamicLossScale", "Event", "Callback",
           "CancelBatch", "CancelEpoch", "CancelFit", "CancelTraining", "StatisticsRecorder",
           "ProgressBar", "CSVLogger", "JSONLinesLogger", "LRScheduler", "Checkpointer",
           "EarlyStopping", "LossCurve"]
