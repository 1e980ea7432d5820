"""The model and its training: the nn.Module, the loop, the step, checkpoints, inference."""
