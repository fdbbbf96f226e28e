"""`torch.backends.cudnn`: Kinone has no cuDNN; its flags are accepted and read by nothing."""

benchmark = False
deterministic = True
enabled = False


def is_available() -> bool:
    return False
