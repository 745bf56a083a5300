"""s4tf_models: models built on s4tf_py's public API (installed from the ``models/`` folder).

The Gemma 2 / Gemma 3 text models (``s4tf_models.gemma``) and the validation suite of models
from Swift for TensorFlow's model garden land here, each built only on ``import s4tf_py as s4``.
"""
