"""``s4.nn``: layers (``Layer``, ``Dense``), initializers (``s4.nn.initializers``) and
neural-network functions (``s4.nn.functional``)."""
from . import functional, initializers
from .context import is_training, learning_phase
from .layer import Dense, Layer, glorot_uniform
from .layer import LayerSummary, SummaryRow
from .core import Flatten, Function, Reshape
from .sequential import Sequential, sequenced

__all__ = ["functional", "initializers", "Layer", "Dense", "glorot_uniform", "learning_phase",
           "is_training"]
__all__ += ["Sequential", "sequenced", "Flatten", "Reshape", "Function", "LayerSummary",
            "SummaryRow"]

#: layer classes imported on first use (each class synthesizes its TangentVector when it is
#: defined: importing them all up front cost ~30 ms of every ``import s4tf_py``)
_LAZY = {
    **dict.fromkeys([
        'MultiHeadAttention'], "attention"),
    **dict.fromkeys([
        'Conv1D', 'Conv2D', 'Conv3D', 'DepthwiseConv2D', 'SeparableConv1D',
        'SeparableConv2D', 'TransposedConv1D', 'TransposedConv2D',
        'TransposedConv3D'], "convolutional"),
    **dict.fromkeys([
        'AlphaDropout', 'Dropout', 'GaussianDropout', 'GaussianNoise'], "dropout"),
    **dict.fromkeys([
        'Embedding'], "embedding"),
    **dict.fromkeys([
        'Dilation2D', 'Erosion2D'], "morphology"),
    **dict.fromkeys([
        'BatchNorm', 'GroupNorm', 'InstanceNorm', 'LayerNorm', 'RMSNorm'], "normalization"),
    **dict.fromkeys([
        'AvgPool1D', 'AvgPool2D', 'AvgPool3D', 'FractionalMaxPool2D',
        'GlobalAvgPool1D', 'GlobalAvgPool2D', 'GlobalAvgPool3D', 'GlobalMaxPool1D',
        'GlobalMaxPool2D', 'GlobalMaxPool3D', 'MaxPool1D', 'MaxPool2D', 'MaxPool3D'], "pooling"),
    **dict.fromkeys([
        'BasicRNN', 'BasicRNNCell', 'Bidirectional', 'GRU', 'GRUCell', 'LSTM',
        'LSTMCell', 'LSTMState', 'RNN', 'RecurrentCell'], "recurrent"),
    **dict.fromkeys([
        'UpSampling1D', 'UpSampling2D', 'UpSampling3D', 'ZeroPadding1D',
        'ZeroPadding2D', 'ZeroPadding3D'], "reshaping"),
}
__all__ += sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 's4tf_py.nn' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
