"""Recurrent layers: RNN (tanh/relu), LSTM and GRU, and their single-step cells, with PyTorch's
names, arguments, parameter names (`weight_ih_l0`, `bias_hh_l1_reverse`, ...) and gate order,
so a PyTorch state dict loads by name.

Each step is a composition of autograd ops (linear, sigmoid, tanh, getitem, stack), so its
gradient is the chain rule through them. The input-to-hidden product of a whole layer is one
GEMM over every time step, computed before the loop; only the hidden-to-hidden product runs
per step. Per step, with x_t the input, h the hidden state and ⊙ the elementwise product:

    RNN:  h' = act(W_ih x_t + b_ih + W_hh h + b_hh)                        act = tanh or relu
    LSTM: i, f, g, o = σ, σ, tanh, σ of the four chunks of (W_ih x_t + b_ih + W_hh h + b_hh)
          c' = f ⊙ c + i ⊙ g,  h' = o ⊙ tanh(c')    (then h' = W_hr h' when proj_size > 0)
    GRU:  r, z = σ of the first two chunks of (W_ih x_t + b_ih + W_hh h + b_hh)
          n = tanh(W_in x_t + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 - z) ⊙ n + z ⊙ h

Initialisation as PyTorch: every parameter ~ U(-1/√hidden_size, 1/√hidden_size).
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from kinone.autograd import Tensor, stack, zeros
from kinone.autograd import cat as _cat

from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _chunks(x: Tensor, count: int) -> list[Tensor]:
    """`count` equal slices of the last dim of x (the gates, in PyTorch's order)."""
    size = x.shape[-1] // count
    return [x[..., k * size : (k + 1) * size] for k in range(count)]


def _hidden_projection(h: Tensor | None, weight_hh, bias_hh):
    """W_hh h + b_hh; for the zero initial state (h None) just b_hh, or None without a bias."""
    return bias_hh if h is None else F.linear(h, weight_hh, bias_hh)


def _plus(a: Tensor, b: Tensor | None) -> Tensor:
    return a if b is None else a + b


def rnn_step(x_proj: Tensor, h: Tensor | None, weight_hh, bias_hh, nonlinearity: str) -> Tensor:
    """h' = act(x_proj + W_hh h + b_hh), with x_proj = W_ih x + b_ih already computed; h None is
    the zero state (no tensor made for it, so the graph holds for any batch size)."""
    pre = _plus(x_proj, _hidden_projection(h, weight_hh, bias_hh))
    return pre.tanh() if nonlinearity == "tanh" else pre.relu()


def lstm_step(x_proj: Tensor, h: Tensor | None, c: Tensor | None, weight_hh, bias_hh) -> tuple[Tensor, Tensor]:
    """(h', c') of one LSTM step (gates i, f, g, o); x_proj = W_ih x + b_ih already computed;
    h and c None are the zero state."""
    i, f, g, o = _chunks(_plus(x_proj, _hidden_projection(h, weight_hh, bias_hh)), 4)
    c = i.sigmoid() * g.tanh() if c is None else f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def gru_step(x_proj: Tensor, h: Tensor | None, weight_hh, bias_hh) -> Tensor:
    """h' of one GRU step (gates r, z, n); x_proj = W_ih x + b_ih already computed; h None is the
    zero state."""
    x_r, x_z, x_n = _chunks(x_proj, 3)
    hidden = _hidden_projection(h, weight_hh, bias_hh)
    h_r, h_z, h_n = [None] * 3 if hidden is None else _chunks(hidden, 3)
    r, z = _plus(x_r, h_r).sigmoid(), _plus(x_z, h_z).sigmoid()
    n = (x_n if h_n is None else x_n + r * h_n).tanh()
    return n - z * n if h is None else n + z * (h - n)


def _check_size(name: str, value, positive: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or (value <= 0 if positive else value < 0):
        kind = "a positive" if positive else "a non-negative"
        raise ValueError(f"{name} must be {kind} int, got {value!r}")


class RNNBase(Module):
    """The stacked (optionally bidirectional) recurrence shared by RNN, LSTM and GRU.

    Input (L, N, H_in), or (N, L, H_in) with batch_first, or unbatched (L, H_in); initial state
    (D·num_layers, N, H_out) (zeros when omitted). Returns (output, h_n), for LSTM
    (output, (h_n, c_n)); output is (L, N, D·H_out), h_n is layer-major as in PyTorch
    (layer 0 forward, layer 0 reverse, layer 1 forward, ...). Dropout with probability
    `dropout` applies to every layer's output but the last, in training only.
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if mode not in _GATES:
            raise ValueError(f"RNNBase: unknown mode {mode!r}; expected one of {sorted(_GATES)}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1:
            raise ValueError(f"{type(self).__name__}: dropout must be a number in [0, 1], got {dropout!r}")
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            _check_size(f"{type(self).__name__}: {name}", value)
        _check_size(f"{type(self).__name__}: proj_size", proj_size, positive=False)
        if proj_size >= hidden_size:
            raise ValueError(
                f"{type(self).__name__}: proj_size ({proj_size}) must be smaller than hidden_size ({hidden_size})"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"{type(self).__name__}: dropout applies between recurrent layers, so dropout={dropout} "
                "has no effect with num_layers=1",
                stacklevel=3,
            )
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        self._create_parameters(np.dtype(np.float32 if dtype is None else dtype))
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def _create_parameters(self, dtype) -> None:
        gate_size = _GATES[self.mode] * self.hidden_size
        out_size = self.proj_size or self.hidden_size
        self._all_weights = []
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else out_size * self.num_directions
            for direction in range(self.num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {"weight_ih": (gate_size, layer_input), "weight_hh": (gate_size, out_size)}
                if self.bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                if self.proj_size > 0:
                    shapes["weight_hr"] = (self.proj_size, self.hidden_size)
                for name, shape in shapes.items():
                    setattr(self, name + suffix, Parameter(np.empty(shape, dtype=dtype)))
                self._all_weights.append([name + suffix for name in shapes])

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """The parameters of each layer and direction, in PyTorch's order."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """A no-op: PyTorch packs the weights into one buffer for cuDNN; Kinone has nothing to pack."""

    # ------------------------------------------------------------------ forward
    def forward(self, input: Tensor, hx=None):
        name = type(self).__name__
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: expected a 2-D (L, H_in) or 3-D input, got shape {input.shape}")
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: input of shape {input.shape} needs its last dim to equal input_size={self.input_size}"
            )
        batched = input.ndim == 3
        x = input if batched else input.unsqueeze(1)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        states = self._initial_states(x, hx, batched)
        output, finals = self._run_layers(x, states)
        if self.batch_first and batched:
            output = output.transpose(0, 1)
        finals = tuple(s if batched else s.squeeze(1) for s in finals)
        if not batched:
            output = output.squeeze(1)
        return (output, finals) if self.mode == "LSTM" else (output, finals[0])

    def _initial_states(self, x: Tensor, hx, batched: bool) -> list[Tensor]:
        """[h0] (or [h0, c0] for LSTM), each of shape (D·num_layers, N, size).

        Without hx the state is zero, and over two or more steps it is None: the first step then
        skips W_hh·0, so the graph holds no zeros made from N and exports with a dynamic batch.
        Over one step it is real zeros, so that W_hh still gets its (zero) gradient, as PyTorch.
        """
        name, batch = type(self).__name__, x.shape[1]
        out_size = self.proj_size or self.hidden_size
        sizes = [out_size, self.hidden_size] if self.mode == "LSTM" else [out_size]
        if hx is None and x.shape[0] > 1:
            return [None] * len(sizes)
        if hx is None:
            return [
                zeros(self.num_layers * self.num_directions, batch, s, dtype=x.dtype, device=x.device) for s in sizes
            ]
        given = list(hx) if self.mode == "LSTM" else [hx]
        if self.mode == "LSTM" and len(given) != 2:
            raise ValueError(f"{name}: hx must be a tuple (h_0, c_0), got {len(given)} tensors")
        states = []
        for state, size, label in zip(given, sizes, ("h_0", "c_0")):
            state = state if batched else state.unsqueeze(1)
            expected = (self.num_layers * self.num_directions, batch, size)
            if tuple(state.shape) != expected:
                raise ValueError(f"{name}: expected {label} of shape {expected}, got {tuple(state.shape)}")
            states.append(state)
        return states

    def _run_layers(self, x: Tensor, states: list[Tensor]):
        finals: list[list[Tensor]] = [[] for _ in states]
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                weights = [getattr(self, name) for name in self._all_weights[index]]
                start = [None if s is None else s[index] for s in states]
                out, last = self._run_direction(x, start, weights, reverse=direction == 1)
                outputs.append(out)
                for collected, state in zip(finals, last):
                    collected.append(state)
            x = outputs[0] if len(outputs) == 1 else _cat(outputs, dim=2)
            if layer < self.num_layers - 1 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
        return x, [stack(collected, dim=0) for collected in finals]

    def _run_direction(self, x: Tensor, state: list[Tensor], weights: list, reverse: bool):
        """One layer in one direction over the whole sequence: (outputs (L, N, H_out), final state)."""
        weight_ih, weight_hh = weights[0], weights[1]
        bias_ih, bias_hh = (weights[2], weights[3]) if self.bias else (None, None)
        weight_hr = weights[-1] if self.proj_size > 0 else None
        x_proj = F.linear(x, weight_ih, bias_ih)  # every time step in one GEMM
        steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
        outputs = []
        for t in steps:
            state = self._step(x_proj[t], state, weight_hh, bias_hh, weight_hr)
            outputs.append(state[0])
        if reverse:
            outputs.reverse()
        return stack(outputs, dim=0), state

    def _step(self, x_proj, state, weight_hh, bias_hh, weight_hr):
        if self.mode == "LSTM":
            h, c = lstm_step(x_proj, state[0], state[1], weight_hh, bias_hh)
            return [h if weight_hr is None else F.linear(h, weight_hr), c]
        if self.mode == "GRU":
            return [gru_step(x_proj, state[0], weight_hh, bias_hh)]
        return [rnn_step(x_proj, state[0], weight_hh, bias_hh, "tanh" if self.mode == "RNN_TANH" else "relu")]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh), act = tanh or relu.

    RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, device=None, dtype=None); forward(input, hx=None) -> (output, h_n).
    """

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("RNN: proj_size is only supported by LSTM, not RNN or GRU")
        if len(args) > 3:
            self_nonlinearity, args = args[3], args[:3] + args[4:]
        else:
            self_nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if self_nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {self_nonlinearity!r}; select 'tanh' or 'relu'")
        super().__init__("RNN_TANH" if self_nonlinearity == "tanh" else "RNN_RELU", *args, **kwargs)
        self.nonlinearity = self_nonlinearity


class LSTM(RNNBase):
    """Long short-term memory (gates i, f, g, o as PyTorch); forward(input, (h_0, c_0)=None) ->
    (output, (h_n, c_n)). LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None)."""

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)


class GRU(RNNBase):
    """Gated recurrent unit (gates r, z, n as PyTorch); forward(input, h_0=None) -> (output, h_n).
    GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, device=None, dtype=None)."""

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("GRU: proj_size is only supported by LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)


# ---------------------------------------------------------------------- cells
class RNNCellBase(Module):
    """One step of a recurrence: weight_ih (chunks·hidden, input), weight_hh (chunks·hidden, hidden),
    bias_ih and bias_hh (chunks·hidden). Input (N, H_in) or unbatched (H_in,)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None, dtype=None):
        super().__init__()
        _check_size(f"{type(self).__name__}: input_size", input_size)
        _check_size(f"{type(self).__name__}: hidden_size", hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        self.weight_ih = Parameter(np.empty((num_chunks * hidden_size, input_size), dtype=dtype))
        self.weight_hh = Parameter(np.empty((num_chunks * hidden_size, hidden_size), dtype=dtype))
        if bias:
            self.bias_ih = Parameter(np.empty(num_chunks * hidden_size, dtype=dtype))
            self.bias_hh = Parameter(np.empty(num_chunks * hidden_size, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def _batched(self, input: Tensor, states):
        """(input as (N, H_in), states as (N, H) each, zeros when None, whether input was batched)."""
        name = type(self).__name__
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: expected input to be 1-D or 2-D, got shape {input.shape}")
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: input of shape {input.shape} needs its last dim to equal input_size={self.input_size}"
            )
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        expected = (x.shape[0], self.hidden_size)
        result = []
        for state in states:
            if state is None:
                state = zeros(*expected, dtype=x.dtype, device=x.device)
            elif not batched:
                state = state.unsqueeze(0)
            if tuple(state.shape) != expected:
                raise ValueError(f"{name}: expected a hidden state of shape {expected}, got {tuple(state.shape)}")
            result.append(state)
        return x, result, batched

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(RNNCellBase):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu; forward(input, hx=None) -> h'."""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", device=None, dtype=None
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r}; select 'tanh' or 'relu'")
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._batched(input, [hx])
        h = rnn_step(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh, self.nonlinearity)
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step (gates i, f, g, o); forward(input, (h, c)=None) -> (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx=None) -> tuple[Tensor, Tensor]:
        x, (h, c), batched = self._batched(input, [None, None] if hx is None else list(hx))
        h, c = lstm_step(F.linear(x, self.weight_ih, self.bias_ih), h, c, self.weight_hh, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n); forward(input, hx=None) -> h'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._batched(input, [hx])
        h = gru_step(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)
        return h if batched else h.squeeze(0)
