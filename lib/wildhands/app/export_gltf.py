"""Rigged glTF 2.0 (binary .glb) export of the hands of one photo, placed in its camera.

Owns: ``RiggedHand`` (a hand as a skeleton and skin: rest mesh, the 16 joints of the hand
model's kinematic tree, skinning weights from the model file, per-joint rotations) built from a
prediction's parameters by ``rig_hand``, and ``write_glb``, the file itself, written by hand
(a JSON chunk and a binary chunk; no glTF library needed).

The skin reproduces the hand model's linear blend skinning exactly: joint j's node carries the
pose rotation R_j and the rest offset J_j - J_parent, its inverse bind matrix is a translation
by -J_j, so joint world matrix x inverse bind matrix is smplx's A_j. The root joint carries the
hand's camera-frame rotation and translation. Pose corrective blend shapes are not exported:
the open hand model has none (posedirs are zero) so the file's skinning gives our vertices; the
real MANO has them, and its exported hand differs from ours by their few-millimetre offsets.

Frames: the hands sit under a node ``camera_frame`` that turns our camera frame (x right,
y down, z forward, metres) into glTF's (y up, the camera looking down -z): a half turn about x.
The camera node is at the origin with the photo's intrinsics (glTF cameras have one focal
length and a centred principal point; the full K goes in the camera's ``extras``). Left hands
are mirrored rigs (rest mesh and joints x -> -x, rotations M R M, faces reversed), so no node
carries a negative scale.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field

import numpy as np
from wildhands.fileio import write_bytes
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import rotvec_matrices
from wildhands.hand.camera_space import Intrinsics

GLB_MAGIC = 0x46546C67       # "glTF"
CHUNK_JSON = 0x4E4F534A      # "JSON"
CHUNK_BIN = 0x004E4942       # "BIN\0"
FLOAT, UNSIGNED_BYTE, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5121, 5123, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
HALF_TURN_ABOUT_X = [1.0, 0.0, 0.0, 0.0]   # quaternion (x, y, z, w): our camera frame -> glTF's
MIRROR_X = np.diag([-1.0, 1.0, 1.0])
ZNEAR_M, ZFAR_M = 0.01, 100.0


@dataclass
class RiggedHand:
    """One hand as a skinned mesh; positions in metres, our camera frame (x right, y down, z forward)."""
    name: str
    rest_vertices: np.ndarray       # (V, 3) the shaped, unposed mesh (model frame)
    faces: np.ndarray               # (F, 3)
    rest_joints: np.ndarray         # (16, 3) the shaped joints (model frame)
    parents: list[int]              # (16,) -1 for the root
    joint_names: list[str]
    weights: np.ndarray             # (V, 16) skinning weights
    local_rotations: np.ndarray     # (16, 3, 3) the pose; the root's carries the camera-frame rotation
    translation: np.ndarray         # (3,) the root joint's position in the camera frame
    extras: dict = field(default_factory=dict)

    def joint_world_matrices(self) -> np.ndarray:
        """(16, 4, 4) posed joint transforms in the camera frame (forward kinematics)."""
        world = np.zeros((len(self.parents), 4, 4))
        for j, parent in enumerate(self.parents):
            local = np.eye(4)
            local[:3, :3] = self.local_rotations[j]
            local[:3, 3] = self.translation if parent < 0 else self.rest_joints[j] - self.rest_joints[parent]
            world[j] = local if parent < 0 else world[parent] @ local
        return world

    def inverse_bind_matrices(self) -> np.ndarray:
        ibm = np.tile(np.eye(4), (len(self.parents), 1, 1))
        ibm[:, :3, 3] = -self.rest_joints
        return ibm

    def skinned_vertices(self) -> np.ndarray:
        """(V, 3) the posed mesh in the camera frame, by linear blend skinning."""
        blend = np.einsum("vj,jab->vab", self.weights, self.joint_world_matrices() @ self.inverse_bind_matrices())
        return np.einsum("vab,vb->va", blend[:, :3, :3], self.rest_vertices) + blend[:, :3, 3]


def finger_axis_angles(hand_model, pose, pose_space: str = "pca") -> np.ndarray:
    """(45,) absolute finger axis-angles (mean pose added) from a prediction's ``pose``."""
    mano = hand_model.mano
    pose = np.asarray(pose, np.float64).reshape(-1)
    mean = mano.hand_mean.detach().cpu().double().numpy()
    components = getattr(mano, "hand_components", None)
    if pose_space == "full" or components is None:
        if pose.shape != (45,):
            raise ValueError(f"pose: the full pose space takes 45 finger axis-angles, got {pose.shape[0]} numbers")
        return pose + mean
    components = components.detach().cpu().double().numpy()
    if pose.shape != (components.shape[0],):
        raise ValueError(f"pose: the hand model has {components.shape[0]} PCA components, got {pose.shape[0]} "
                         "coefficients")
    return pose @ components + mean


def rig_hand(hand_model, params: dict, translation, mirrored: bool = False, name: str = "hand") -> RiggedHand:
    """The rig of one prediction: ``params`` as ``HandResult.params`` (``betas``, ``pose``,
    ``pose_space``, ``global_orient`` = the camera rotation R), ``translation`` (3,) the root
    keypoint in the camera frame, ``mirrored`` for a left hand."""
    mano = hand_model.mano
    as_numpy = lambda t: t.detach().cpu().double().numpy()  # noqa: E731
    betas = np.asarray(params["betas"], np.float64).reshape(-1)
    shapedirs = as_numpy(mano.shapedirs)
    if betas.shape != (shapedirs.shape[-1],):
        raise ValueError(f"betas: the hand model takes {shapedirs.shape[-1]}, got {betas.shape[0]}")
    rest_vertices = as_numpy(mano.v_template) + shapedirs @ betas
    rest_joints = as_numpy(mano.J_regressor) @ rest_vertices
    parents = [int(p) for p in mano.parents.cpu()]
    parents[0] = -1
    rotations = np.concatenate([rotvec_matrices(params["global_orient"]),
                                rotvec_matrices(finger_axis_angles(hand_model, params["pose"],
                                                             params.get("pose_space", "pca")))])
    faces = np.asarray(hand_model.faces, np.int64)
    if mirrored:
        rest_vertices, rest_joints = rest_vertices @ MIRROR_X, rest_joints @ MIRROR_X
        rotations = MIRROR_X @ rotations @ MIRROR_X
        faces = faces[:, ::-1]
    has_correctives = bool(mano.posedirs.abs().max() > 0)
    return RiggedHand(name=name, rest_vertices=rest_vertices, faces=np.ascontiguousarray(faces),
                      rest_joints=rest_joints, parents=parents, joint_names=list(kp.MANO_JOINT_NAMES),
                      weights=as_numpy(mano.lbs_weights), local_rotations=rotations,
                      translation=np.asarray(translation, np.float64).reshape(3),
                      extras={"handedness": "left" if mirrored else "right", "hand_model": hand_model.name,
                              "pose_correctives_exported": False, "hand_model_has_pose_correctives": has_correctives})


class _Buffer:
    """The binary chunk: 4-byte aligned views, and accessors on them."""

    def __init__(self):
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, array: np.ndarray, component: int, kind: str, target: int | None = None,
            with_bounds: bool = False) -> int:
        payload = np.ascontiguousarray(array).tobytes()
        self.data += b"\0" * (-len(self.data) % 4)
        view = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(payload)}
        if target is not None:
            view["target"] = target
        self.data += payload
        self.views.append(view)
        accessor = {"bufferView": len(self.views) - 1, "componentType": component,
                    "count": int(array.shape[0]), "type": kind}
        if with_bounds:
            accessor["min"] = array.min(axis=0).astype(float).tolist()
            accessor["max"] = array.max(axis=0).astype(float).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def _quaternion(matrix: np.ndarray) -> list[float]:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(matrix).as_quat().tolist()   # (x, y, z, w), glTF's order


def _influences(weights: np.ndarray, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(V, 4k) joint ids and weights of each vertex's non-zero influences, heaviest first."""
    count = int(max(1, (weights > threshold).sum(axis=1).max()))
    slots = 4 * math.ceil(count / 4)
    order = np.argsort(-weights, axis=1, kind="stable")[:, :slots]
    chosen = np.take_along_axis(weights, order, axis=1)
    chosen = np.where(chosen > threshold, chosen, 0.0)
    joints = np.where(chosen > 0, order, 0)
    return joints.astype(np.uint8), (chosen / chosen.sum(axis=1, keepdims=True)).astype(np.float32)


def gltf_document(hands: list[RiggedHand], intrinsics: Intrinsics, extras: dict | None = None) -> tuple[dict, bytes]:
    """The glTF JSON and its binary buffer for ``hands`` seen by ``intrinsics``."""
    buffer = _Buffer()
    nodes: list[dict] = [
        {"name": "camera", "camera": 0},
        {"name": "camera_frame", "rotation": HALF_TURN_ABOUT_X, "children": [],
         "extras": {"note": "children are in the photo's camera frame: x right, y down, z forward, metres"}},
    ]
    meshes, skins, roots = [], [], []
    for h, hand in enumerate(hands):
        first = len(nodes)
        for j, parent in enumerate(hand.parents):
            node = {"name": f"{hand.name}_{hand.joint_names[j]}", "rotation": _quaternion(hand.local_rotations[j]),
                    "translation": (hand.translation if parent < 0
                                    else hand.rest_joints[j] - hand.rest_joints[parent]).tolist()}
            nodes.append(node)
        for j, parent in enumerate(hand.parents):
            if parent >= 0:
                nodes[first + parent].setdefault("children", []).append(first + j)
        nodes[1]["children"].append(first)
        joint_ids, joint_weights = _influences(hand.weights)
        attributes = {"POSITION": buffer.add(hand.rest_vertices.astype(np.float32), FLOAT, "VEC3", ARRAY_BUFFER,
                                             with_bounds=True)}
        for k in range(joint_ids.shape[1] // 4):
            attributes[f"JOINTS_{k}"] = buffer.add(joint_ids[:, 4 * k:4 * k + 4], UNSIGNED_BYTE, "VEC4", ARRAY_BUFFER)
            attributes[f"WEIGHTS_{k}"] = buffer.add(joint_weights[:, 4 * k:4 * k + 4], FLOAT, "VEC4", ARRAY_BUFFER)
        small = hand.rest_vertices.shape[0] < 65536
        indices = buffer.add(hand.faces.reshape(-1).astype(np.uint16 if small else np.uint32),
                             UNSIGNED_SHORT if small else UNSIGNED_INT, "SCALAR", ELEMENT_ARRAY_BUFFER)
        # glTF matrices are column-major
        ibm = buffer.add(hand.inverse_bind_matrices().transpose(0, 2, 1).astype(np.float32), FLOAT, "MAT4")
        meshes.append({"name": hand.name, "primitives": [{"attributes": attributes, "indices": indices, "mode": 4}]})
        skins.append({"name": f"{hand.name}_skin", "joints": list(range(first, first + len(hand.parents))),
                      "skeleton": first, "inverseBindMatrices": ibm})
        nodes[first]["extras"] = {"translation_m": hand.translation.tolist(), **hand.extras}
        roots.append(len(nodes))
        nodes.append({"name": hand.name, "mesh": h, "skin": h, "extras": hand.extras})
    width, height = intrinsics.width, intrinsics.height
    camera = {"name": "photo_camera", "type": "perspective",
              "perspective": {"yfov": 2 * math.atan(height / (2 * intrinsics.fy)), "aspectRatio": width / height,
                              "znear": ZNEAR_M, "zfar": ZFAR_M},
              "extras": {**intrinsics.to_dict(), "matrix": intrinsics.matrix.tolist(),
                         "note": "glTF's camera has one focal length and a centred principal point; K is exact"}}
    document = {
        "asset": {"version": "2.0", "generator": "wildhands"},
        "scene": 0,
        "scenes": [{"name": "photo", "nodes": [0, 1] + roots, "extras": extras or {}}],
        "nodes": nodes, "meshes": meshes, "skins": skins, "cameras": [camera],
        "accessors": buffer.accessors, "bufferViews": buffer.views,
        "buffers": [{"byteLength": len(buffer.data)}],
    }
    return document, bytes(buffer.data)


def glb_bytes(document: dict, binary: bytes) -> bytes:
    """A GLB container: 12-byte header, the JSON chunk (space padded), the binary chunk (zero padded)."""
    text = json.dumps(document, separators=(",", ":"), default=_plain).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return (struct.pack("<III", GLB_MAGIC, 2, total) + struct.pack("<II", len(text), CHUNK_JSON) + text
            + struct.pack("<II", len(binary), CHUNK_BIN) + binary)


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} into glTF JSON")


def write_glb(path, hands: list[RiggedHand], intrinsics: Intrinsics, extras: dict | None = None):
    """Write ``hands`` and the camera as one binary glTF file, atomically."""
    document, binary = gltf_document(hands, intrinsics, extras)
    return write_bytes(path, glb_bytes(document, binary))


def export_photo(path, results, hand_model, intrinsics: Intrinsics, image_name: str = ""):
    """One ``.glb`` for the hands of one photo (``predict.HandResult``s already placed by
    ``camera_space.place_results``), atomically; returns its path."""
    rigs = []
    for i, result in enumerate(results):
        if "translation_m" not in result.extras:
            raise ValueError(f"hand {i}: no camera-frame translation; place the hands (camera_space.place_results) "
                             "before exporting")
        rigs.append(rig_hand(hand_model, result.params, result.extras["translation_m"], result.crop.mirrored,
                             name=f"hand{i}_{result.handedness}"))
    return write_glb(path, rigs, intrinsics, {"image": image_name, "units": "metres", "generator": "wildhands predict"})
