"""The differentiable operations of kinone.autograd, one family per module."""
