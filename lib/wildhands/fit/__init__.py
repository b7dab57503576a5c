"""Fitting the hand model to observations: batched Levenberg-Marquardt, the 2D fit (eq. 10), the 3D fit,
the refinement of a network prediction, and the camera-space hand's perspective fit."""
