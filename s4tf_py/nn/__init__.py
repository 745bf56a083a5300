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
from .convolutional import (Conv1D, Conv2D, Conv3D, DepthwiseConv2D, SeparableConv1D,
                            SeparableConv2D, TransposedConv1D, TransposedConv2D,
                            TransposedConv3D)
from .morphology import Dilation2D, Erosion2D
from .pooling import (AvgPool1D, AvgPool2D, AvgPool3D, FractionalMaxPool2D, GlobalAvgPool1D,
                      GlobalAvgPool2D, GlobalAvgPool3D, GlobalMaxPool1D, GlobalMaxPool2D,
                      GlobalMaxPool3D, MaxPool1D, MaxPool2D, MaxPool3D)
from .recurrent import (GRU, LSTM, RNN, BasicRNN, BasicRNNCell, Bidirectional, GRUCell,
                        LSTMCell, LSTMState, RecurrentCell)
from .reshaping import (UpSampling1D, UpSampling2D, UpSampling3D, ZeroPadding1D, ZeroPadding2D,
                        ZeroPadding3D)

__all__ += ["Conv1D", "Conv2D", "Conv3D", "TransposedConv1D", "TransposedConv2D",
            "TransposedConv3D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
            "Dilation2D", "Erosion2D", "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D",
            "AvgPool2D", "AvgPool3D", "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D",
            "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D", "FractionalMaxPool2D",
            "BasicRNNCell", "LSTMCell", "GRUCell", "LSTMState", "RecurrentCell", "RNN",
            "BasicRNN", "LSTM", "GRU", "Bidirectional", "UpSampling1D", "UpSampling2D",
            "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"]
from .attention import MultiHeadAttention
from .dropout import AlphaDropout, Dropout, GaussianDropout, GaussianNoise
from .embedding import Embedding
from .normalization import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm

__all__ += ["BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "RMSNorm", "Dropout",
            "AlphaDropout", "GaussianDropout", "GaussianNoise", "Embedding",
            "MultiHeadAttention"]
