"""`torch.nn.modules.rnn`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..layers.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNBase", "RNNCell", "RNNCellBase"]
