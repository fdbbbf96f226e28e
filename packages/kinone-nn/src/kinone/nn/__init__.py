"""kinone.nn: Module, layers, initialisation and state-dict files, with PyTorch's names.

>>> from kinone import nn
>>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
>>> list(model.state_dict())
['0.weight', '0.bias', '2.weight', '2.bias']
"""

from . import functional, init, modules, utils
from .__about__ import __version__
from .containers import ModuleDict, ModuleList, Sequential
from .layers.activation import (
    ELU,
    GELU,
    Hardsigmoid,
    Hardswish,
    LeakyReLU,
    LogSoftmax,
    Mish,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .layers.attention import MultiheadAttention
from .layers.conv import Conv1d, Conv2d, ConvTranspose2d
from .layers.distance import CosineSimilarity
from .layers.dropout import Dropout, Dropout2d
from .layers.embedding import Embedding
from .layers.linear import Flatten, Identity, Linear
from .layers.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, KLDivLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss
from .layers.normalization import (
    BatchNorm1d,
    BatchNorm2d,
    GroupNorm,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    LayerNorm,
)
from .layers.padding import ConstantPad2d, ReflectionPad2d, ReplicationPad2d, ZeroPad2d
from .layers.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .layers.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from .layers.transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from .layers.upsample import PixelShuffle, Upsample, UpsamplingBilinear2d, UpsamplingNearest2d
from .module import IncompatibleKeys, Module, RemovableHandle
from .module_graph import graph
from .parameter import Parameter
from .serialization import load, load_with_metadata, save

__all__ = [
    "ELU",
    "GELU",
    "GRU",
    "LSTM",
    "RNN",
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "ConstantPad2d",
    "Conv1d",
    "Conv2d",
    "ConvTranspose2d",
    "CosineSimilarity",
    "CrossEntropyLoss",
    "Dropout",
    "Dropout2d",
    "Embedding",
    "Flatten",
    "GRUCell",
    "GroupNorm",
    "Hardsigmoid",
    "Hardswish",
    "Identity",
    "IncompatibleKeys",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "KLDivLoss",
    "L1Loss",
    "LSTMCell",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "MaxPool2d",
    "Mish",
    "Module",
    "ModuleDict",
    "ModuleList",
    "MultiheadAttention",
    "NLLLoss",
    "Parameter",
    "PixelShuffle",
    "RNNBase",
    "RNNCell",
    "RNNCellBase",
    "ReLU",
    "ReLU6",
    "ReflectionPad2d",
    "RemovableHandle",
    "ReplicationPad2d",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "SmoothL1Loss",
    "Softmax",
    "Softplus",
    "Tanh",
    "Transformer",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "Upsample",
    "UpsamplingBilinear2d",
    "UpsamplingNearest2d",
    "ZeroPad2d",
    "__version__",
    "functional",
    "graph",
    "init",
    "load",
    "load_with_metadata",
    "modules",
    "save",
    "utils",
]
