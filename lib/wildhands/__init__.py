"""wildhands: 3D hand shape and pose from single photographs.

A reimplementation of Boukhayma, de Bem and Torr, "3D Hand Shape and Pose from
Images in the Wild" (CVPR 2019): a ResNet encoder, a fixed MANO-format hand model
through ``smplx``, weak-perspective reprojection, and the paper's four losses.
One module per pipeline stage; see README.md for the map.
"""
__version__ = "0.1.0"
