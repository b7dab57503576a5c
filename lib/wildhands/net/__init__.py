"""The network: encoder, hand reconstructor, losses, training samples, training and checkpoints."""
