"""The layers: Modules that hold parameters and buffers and call kinone.nn.functional."""
