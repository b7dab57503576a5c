"""The hand: keypoint conventions, cameras, the MANO-format hand model and its builder.

Imports nothing of data, fitting, training or prediction (tests/test_layering.py)."""
