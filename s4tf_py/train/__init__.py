"""``s4.train``: what a training loop uses. For now its metrics (:mod:`s4tf_py.train.metrics`);
the training loop and its callbacks live here too.

>>> from s4tf_py.train import metrics
>>> metrics.get("accuracy").name
'accuracy'
"""
from . import metrics

__all__ = ["metrics"]
