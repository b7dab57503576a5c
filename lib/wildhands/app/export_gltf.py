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

Videos: ``export_video`` writes one ``.glb`` for the tracks of a video (``app.video``'s
``<stem>_track<k>.npz``): each track one rigged hand (``HandTrack``) whose rest mesh and skin come
from the track's shape (the offline temporal fit shares one betas per track; where the betas
differ, as online or per frame, the rest shape is their mean and the hand's extras say so), and
one glTF animation: per frame seen, every joint's rotation and the root's translation (LINEAR
keys at frame index / fps; quaternions sign-continuous so that slerp takes the short way). Where
the video's hands were placed by the perspective pose fit (``fit.perspective``, frame by frame, as
``app.video`` does with ``--export glb``), the joint rotations, shape and root translation are that
fit's, so that skinning the file gives the frames' ``vertices_camera``; otherwise the smoothed
parameters with the frame's camera-space placement (``camera_space.place_hand``). A hand not
seen in a frame is hidden there by a scale of 0 on its root joint: glTF 2.0 has no visibility
property (KHR_node_visibility is too new for Blender and most viewers), and every viewer and
Blender's importer play a scale key. Its keys are STEP, one where the hand
appears or disappears: LINEAR keys would shrink and grow the hand across the frame before.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wildhands.data.crops import CropTransform
from wildhands.fileio import write_bytes
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import rotvec_matrices
from wildhands.hand.camera_space import Intrinsics, default_intrinsics, image_pixels_per_metre, place_hand

GLB_MAGIC = 0x46546C67       # "glTF"
CHUNK_JSON = 0x4E4F534A      # "JSON"
CHUNK_BIN = 0x004E4942       # "BIN\0"
FLOAT, UNSIGNED_BYTE, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5121, 5123, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
HALF_TURN_ABOUT_X = [1.0, 0.0, 0.0, 0.0]   # quaternion (x, y, z, w): our camera frame -> glTF's
MIRROR_X = np.diag([-1.0, 1.0, 1.0])
ZNEAR_M, ZFAR_M = 0.01, 100.0
SHARED_BETAS_TOLERANCE = 1e-6
TRACK_FIELDS = ("frames", "track_id", "side", "betas", "global_orient", "pose", "scale_crop_px_per_m", "crop_transform",
                "keypoints_2d", "joints_3d", "vertices")


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
    """(45,) absolute finger axis-angles (mean pose added) from a prediction's ``pose``; (K, 45)
    from a (K, n) pose per frame."""
    mano = hand_model.mano
    pose = np.asarray(pose, np.float64)
    pose = pose if pose.ndim == 2 else pose.reshape(-1)
    mean = mano.hand_mean.detach().cpu().double().numpy()
    components = getattr(mano, "hand_components", None)
    if pose_space == "full" or components is None:
        if pose.shape[-1] != 45:
            raise ValueError(f"pose: the full pose space takes 45 finger axis-angles, got {pose.shape[-1]} numbers")
        return pose + mean
    components = components.detach().cpu().double().numpy()
    if pose.shape[-1] != components.shape[0]:
        raise ValueError(f"pose: the hand model has {components.shape[0]} PCA components, got {pose.shape[-1]} "
                         "coefficients")
    return pose @ components + mean


def pose_space_of(hand_model, pose) -> str:
    """The pose space of ``pose``: "full" for 45 finger axis-angles where the model's PCA has
    another width (as ``predict`` decides), else "pca"."""
    return "full" if np.shape(pose)[-1] == 45 != hand_model.num_pca_comps else "pca"


def shaped_rest(hand_model, betas, mirrored: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rest vertices (V, 3), rest joints (16, 3), faces (F, 3)) of the shape ``betas``, mirrored
    (x -> -x, faces reversed) for a left hand."""
    mano = hand_model.mano
    betas = np.asarray(betas, np.float64).reshape(-1)
    shapedirs = mano.shapedirs.detach().cpu().double().numpy()
    if betas.shape != (shapedirs.shape[-1],):
        raise ValueError(f"betas: the hand model takes {shapedirs.shape[-1]}, got {betas.shape[0]}")
    rest_vertices = mano.v_template.detach().cpu().double().numpy() + shapedirs @ betas
    rest_joints = mano.J_regressor.detach().cpu().double().numpy() @ rest_vertices
    faces = np.asarray(hand_model.faces, np.int64)
    if mirrored:
        rest_vertices, rest_joints = rest_vertices @ MIRROR_X, rest_joints @ MIRROR_X
        faces = faces[:, ::-1]
    return rest_vertices, rest_joints, np.ascontiguousarray(faces)


def pose_rotations(hand_model, global_orient, pose, pose_space: str = "pca", mirrored: bool = False) -> np.ndarray:
    """(16, 3, 3) local joint rotations (the root's: the camera rotation ``global_orient``, an
    axis-angle) of one pose, or (K, 16, 3, 3) of K poses ((K, 3) and (K, n)); mirrored: M R M."""
    fingers = finger_axis_angles(hand_model, pose, pose_space)
    lead = fingers.shape[:-1]
    rotations = np.concatenate([rotvec_matrices(global_orient).reshape(*lead, 1, 3, 3),
                                rotvec_matrices(fingers).reshape(*lead, 15, 3, 3)], axis=-3)
    return MIRROR_X @ rotations @ MIRROR_X if mirrored else rotations


def rig_hand(hand_model, params: dict, translation, mirrored: bool = False, name: str = "hand") -> RiggedHand:
    """The rig of one prediction: ``params`` as ``HandResult.params`` (``betas``, ``pose``,
    ``pose_space``, ``global_orient`` = the camera rotation R), ``translation`` (3,) the root
    keypoint in the camera frame, ``mirrored`` for a left hand."""
    mano = hand_model.mano
    rest_vertices, rest_joints, faces = shaped_rest(hand_model, params["betas"], mirrored)
    parents = [int(p) for p in mano.parents.cpu()]
    parents[0] = -1
    rotations = pose_rotations(hand_model, params["global_orient"], params["pose"], params.get("pose_space", "pca"),
                               mirrored)
    has_correctives = bool(mano.posedirs.abs().max() > 0)
    return RiggedHand(name=name, rest_vertices=rest_vertices, faces=faces,
                      rest_joints=rest_joints, parents=parents, joint_names=list(kp.MANO_JOINT_NAMES),
                      weights=mano.lbs_weights.detach().cpu().double().numpy(), local_rotations=rotations,
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
            accessor["min"] = np.atleast_1d(array.min(axis=0)).astype(float).tolist()
            accessor["max"] = np.atleast_1d(array.max(axis=0)).astype(float).tolist()
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


class _Scene:
    """A glTF document being built: the camera, the node turning our camera frame into glTF's,
    the hands under it, their meshes and skins, and the binary buffer."""

    def __init__(self, kind: str = "photo"):
        self.kind, self.buffer = kind, _Buffer()
        self.nodes: list[dict] = [
            {"name": "camera", "camera": 0},
            {"name": "camera_frame", "rotation": HALF_TURN_ABOUT_X, "children": [],
             "extras": {"note": f"children are in the {kind}'s camera frame: x right, y down, z forward, metres"}},
        ]
        self.meshes, self.skins, self.roots = [], [], []

    def add_hand(self, hand: RiggedHand) -> int:
        """The hand's joint nodes (posed as ``hand``), skinned mesh and skin; returns its root joint's node."""
        buffer, nodes, first = self.buffer, self.nodes, len(self.nodes)
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
        mesh = len(self.meshes)
        self.meshes.append({"name": hand.name, "primitives": [{"attributes": attributes, "indices": indices,
                                                                "mode": 4}]})
        self.skins.append({"name": f"{hand.name}_skin", "joints": list(range(first, first + len(hand.parents))),
                           "skeleton": first, "inverseBindMatrices": ibm})
        nodes[first]["extras"] = {"translation_m": hand.translation.tolist(), **hand.extras}
        self.roots.append(len(nodes))
        nodes.append({"name": hand.name, "mesh": mesh, "skin": mesh, "extras": hand.extras})
        return first

    def document(self, intrinsics: Intrinsics, extras: dict | None = None,
                 animations: list | None = None) -> tuple[dict, bytes]:
        """The glTF JSON (with ``animations`` where given) and its binary buffer."""
        document = {
            "asset": {"version": "2.0", "generator": "wildhands"},
            "scene": 0,
            "scenes": [{"name": self.kind, "nodes": [0, 1] + self.roots, "extras": extras or {}}],
            "nodes": self.nodes, "meshes": self.meshes, "skins": self.skins,
            "cameras": [_camera(intrinsics, f"{self.kind}_camera")],
        }
        if animations:
            document["animations"] = animations
        document.update({"accessors": self.buffer.accessors, "bufferViews": self.buffer.views,
                         "buffers": [{"byteLength": len(self.buffer.data)}]})
        return document, bytes(self.buffer.data)


def _camera(intrinsics: Intrinsics, name: str) -> dict:
    width, height = intrinsics.width, intrinsics.height
    return {"name": name, "type": "perspective",
            "perspective": {"yfov": 2 * math.atan(height / (2 * intrinsics.fy)), "aspectRatio": width / height,
                            "znear": ZNEAR_M, "zfar": ZFAR_M},
            "extras": {**intrinsics.to_dict(), "matrix": intrinsics.matrix.tolist(),
                       "note": "glTF's camera has one focal length and a centred principal point; K is exact"}}


def gltf_document(hands: list[RiggedHand], intrinsics: Intrinsics, extras: dict | None = None) -> tuple[dict, bytes]:
    """The glTF JSON and its binary buffer for ``hands`` seen by ``intrinsics``."""
    scene = _Scene()
    for hand in hands:
        scene.add_hand(hand)
    return scene.document(intrinsics, extras)


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
    ``fit.perspective.place_results``), atomically; returns its path. Each hand's skeleton is posed
    by its ``camera_space_fit`` (rotation, pose) where the perspective fit ran, so that skinning the
    file gives ``vertices_camera``; else by its weak-perspective ``params``."""
    rigs = []
    for i, result in enumerate(results):
        if "translation_m" not in result.extras:
            raise ValueError(f"hand {i}: no camera-frame translation; place the hands "
                             "(fit.perspective.place_results) before exporting")
        # the perspective fit's rotation and pose where it ran (fit.perspective), else the weak-perspective ones
        params = result.extras.get("camera_space_fit") or result.params
        rigs.append(rig_hand(hand_model, params, result.extras["translation_m"], result.crop.mirrored,
                             name=f"hand{i}_{result.handedness}"))
    return write_glb(path, rigs, intrinsics, {"image": image_name, "units": "metres", "generator": "wildhands predict"})


# ----------------------------------------------------------------------------- videos: animated tracks

@dataclass
class HandTrack:
    """One hand through a video: its rig (rest shape, skin, posed as in its first frame seen) and
    the pose of every frame it is seen in."""
    rig: RiggedHand
    frames: np.ndarray              # (K,) increasing indices of the frames the hand is seen in
    local_rotations: np.ndarray     # (K, 16, 3, 3)
    translations: np.ndarray        # (K, 3) the root joint in the camera frame, metres


def track_animation(hand_model, frames, betas, global_orient, pose, translations, mirrored: bool = False,
                    name: str = "track") -> HandTrack:
    """A hand through a video from its parameters per frame seen: ``frames`` (K,) increasing,
    ``betas`` (K, S) or (S,), ``global_orient`` (K, 3) axis-angles, ``pose`` (K, n) as ``predict``
    gives it, ``translations`` (K, 3) the root in the camera frame; ``mirrored`` for a left hand."""
    frames = np.asarray(frames).reshape(-1)
    if (len(frames) == 0 or not np.issubdtype(frames.dtype, np.integer) or frames[0] < 0
            or np.any(np.diff(frames) <= 0)):
        raise ValueError(f"{name}: frames must be increasing frame indices from 0, got {frames.tolist()}")
    betas = np.asarray(betas, np.float64)
    betas = betas.reshape(-1, betas.shape[-1])
    global_orient, pose = np.asarray(global_orient, np.float64), np.asarray(pose, np.float64)
    translations = np.asarray(translations, np.float64)
    for label, value, width in (("global_orient", global_orient, 3), ("translations", translations, 3),
                                ("pose", pose, pose.shape[-1]), ("betas", betas, betas.shape[-1])):
        if value.shape != (len(frames), width) and not (label == "betas" and len(value) == 1):
            raise ValueError(f"{name}: {label} must be one row of {width} per frame seen ({len(frames)}), got "
                             f"shape {value.shape}")
    space = pose_space_of(hand_model, pose)
    shared = bool(np.ptp(betas, axis=0).max() <= SHARED_BETAS_TOLERANCE)
    rig = rig_hand(hand_model, {"betas": betas.mean(axis=0), "global_orient": global_orient[0], "pose": pose[0],
                                "pose_space": space}, translations[0], mirrored, name)
    rig.extras.update({"first_frame": int(frames[0]), "last_frame": int(frames[-1]), "frames_seen": len(frames),
                       "betas_shared": shared})
    if not shared:
        rig.extras["shape_note"] = ("the per-frame betas differ (online or per-frame smoothing): the rest shape is "
                                    "their mean, so the mesh differs from the track's by the shape changes")
    rotations = pose_rotations(hand_model, global_orient, pose, space, mirrored)
    return HandTrack(rig, frames.astype(np.int64), rotations, translations)


def _quaternions(rotations: np.ndarray) -> np.ndarray:
    """(K, J, 4) quaternions (x, y, z, w) of (K, J, 3, 3) rotations, each joint's sign-continuous
    over K (q and -q are one rotation; glTF's slerp between keys of opposite sign goes the long way)."""
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(rotations.reshape(-1, 3, 3)).as_quat().reshape(*rotations.shape[:-2], 4)
    flips = np.where(np.sum(q[1:] * q[:-1], axis=-1) < 0, -1.0, 1.0)
    q[1:] *= np.cumprod(flips, axis=0)[..., None]
    return q


def visibility_keys(frames, frame_count: int) -> tuple[np.ndarray, np.ndarray]:
    """(key frames, shown there): a key at frame 0 and wherever the hand appears or disappears."""
    seen = np.zeros(frame_count, bool)
    seen[np.asarray(frames)] = True
    keys = np.concatenate([[0], np.flatnonzero(seen[1:] != seen[:-1]) + 1])
    return keys, seen[keys]


def _animate_track(buffer: _Buffer, track: HandTrack, root: int, fps: float, frame_count: int,
                   animation: dict) -> None:
    """Append the track's channels to ``animation``: per frame seen every joint's rotation and the
    root's translation (LINEAR), and the root's scale, 0 where the hand is not seen (STEP)."""
    def animate(node: int, path: str, times: int, values: np.ndarray, interpolation: str = "LINEAR") -> None:
        output = buffer.add(values.astype(np.float32), FLOAT, f"VEC{values.shape[1]}")
        animation["samplers"].append({"input": times, "output": output, "interpolation": interpolation})
        animation["channels"].append({"sampler": len(animation["samplers"]) - 1,
                                      "target": {"node": node, "path": path}})

    times = buffer.add((track.frames / fps).astype(np.float32), FLOAT, "SCALAR", with_bounds=True)
    quaternions = _quaternions(track.local_rotations)
    for j in range(quaternions.shape[1]):       # the skin's joints are the nodes root, root + 1, ...
        animate(root + j, "rotation", times, quaternions[:, j])
    animate(root, "translation", times, track.translations)
    keys, shown = visibility_keys(track.frames, frame_count)
    key_times = buffer.add((keys / fps).astype(np.float32), FLOAT, "SCALAR", with_bounds=True)
    animate(root, "scale", key_times, np.repeat(shown[:, None], 3, axis=1).astype(np.float64), "STEP")


def animated_document(tracks: list[HandTrack], intrinsics: Intrinsics, fps: float, frame_count: int | None = None,
                      extras: dict | None = None, name: str = "video") -> tuple[dict, bytes]:
    """The glTF JSON and binary buffer of ``tracks`` seen by ``intrinsics``: one animation ``name``
    of ``frame_count`` frames (default: to the last frame seen) at ``fps``."""
    if not tracks:
        raise ValueError("tracks: no track to export")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps: expected a positive frame rate, got {fps}")
    last = max(int(track.frames[-1]) for track in tracks)
    frame_count = last + 1 if frame_count is None else int(frame_count)
    if frame_count <= last:
        raise ValueError(f"frame_count: {frame_count} frames, but a track is seen in frame {last}")
    scene = _Scene("video")
    animation = {"name": name, "channels": [], "samplers": []}
    for track in tracks:
        _animate_track(scene.buffer, track, scene.add_hand(track.rig), fps, frame_count, animation)
    extras = {**(extras or {}), "fps": fps, "frames": frame_count,
              "hidden": "a hand not seen in a frame has scale 0 there (STEP keys on its root joint)"}
    return scene.document(intrinsics, extras, [animation])


def write_track_animation(path, tracks: list[HandTrack], intrinsics: Intrinsics, fps: float,
                          frame_count: int | None = None, extras: dict | None = None, name: str = "video") -> Path:
    """Write ``tracks`` animated and the camera as one binary glTF file, atomically."""
    document, binary = animated_document(tracks, intrinsics, fps, frame_count, extras, name)
    return write_bytes(path, glb_bytes(document, binary))


def read_track(path) -> dict:
    """The arrays of one ``app.video`` track file (``<stem>_track<k>.npz``), checked."""
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such track file")
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable track file ({err})") from err
    missing = [key for key in TRACK_FIELDS if key not in arrays]
    if missing:
        raise ValueError(f"{path}: not a video track file, it has no {', '.join(missing)}")
    if str(arrays["side"]) not in ("left", "right"):
        raise ValueError(f"{path}: side must be left or right, got {arrays['side']}")
    return arrays


def track_translations(track: dict, intrinsics: Intrinsics) -> np.ndarray:
    """(K, 3) the root of every frame of a ``read_track`` track in the camera frame, placed as a
    photo's hands are (``camera_space.place_hand``: weak perspective, then the perspective fit)."""
    crops = [CropTransform.from_dict(crop) for crop in json.loads(str(track["crop_transform"]))]
    sizes = {(crop.image_width, crop.image_height) for crop in crops}
    if sizes != {(intrinsics.width, intrinsics.height)}:
        raise ValueError(f"intrinsics: a {intrinsics.width}x{intrinsics.height} camera, but the track's frames are "
                         f"{', '.join(f'{w}x{h}' for w, h in sorted(sizes))}")
    return np.stack([place_hand(track["joints_3d"][k], track["vertices"][k], track["keypoints_2d"][k],
                                image_pixels_per_metre({"scale_px_per_m": track["scale_crop_px_per_m"][k]}, crop),
                                intrinsics)["translation_m"] for k, crop in enumerate(crops)])


def export_video(path, track_files, hand_model, fps: float, frame_count: int | None = None,
                 intrinsics: Intrinsics | None = None, video_name: str = "") -> Path:
    """One ``.glb`` for the tracks of a video (``app.video``'s track files): each a rigged hand,
    one animation at ``fps`` over ``frame_count`` frames, and the camera ``intrinsics`` (default: the
    one the track files record, else ``camera_space.default_intrinsics`` of the frames' size); written
    atomically, returns its path. A track placed by the perspective pose fit is animated by that
    fit's rotations, pose and translations (skinning the file gives its ``vertices_camera``), others
    by their smoothed parameters placed as photos' are (``track_translations``)."""
    tracks = [read_track(file) for file in track_files]
    if not tracks:
        raise ValueError("track_files: no track to export")
    if intrinsics is None and "camera_intrinsics" in tracks[0]:
        intrinsics = Intrinsics.from_dict(json.loads(str(tracks[0]["camera_intrinsics"])))
    if intrinsics is None:
        first = json.loads(str(tracks[0]["crop_transform"]))[0]
        intrinsics = default_intrinsics(int(first["image_width"]), int(first["image_height"]))
    hands = []
    for file, track in zip(track_files, tracks):
        name = f"track{int(track['track_id'])}_{track['side']}"
        if "camera_global_orient" in track:      # placed by the perspective pose fit: its rig, frame by frame
            fitted = Intrinsics.from_dict(json.loads(str(track["camera_intrinsics"])))
            if not (np.allclose(fitted.matrix, intrinsics.matrix) and (fitted.width, fitted.height)
                    == (intrinsics.width, intrinsics.height)):
                raise ValueError(f"{file}: its hands were fitted under another camera ({fitted.to_dict()['matrix']}) "
                                 f"than intrinsics ({intrinsics.to_dict()['matrix']}); export without intrinsics")
            hands.append(track_animation(hand_model, track["frames"], track["camera_betas"],
                                         track["camera_global_orient"], track["camera_pose"], track["translation_m"],
                                         str(track["side"]) == "left", name))
        else:
            hands.append(track_animation(hand_model, track["frames"], track["betas"], track["global_orient"],
                                         track["pose"], track_translations(track, intrinsics),
                                         str(track["side"]) == "left", name))
    return write_track_animation(path, hands, intrinsics, fps, frame_count,
                                 {"video": video_name, "units": "metres", "generator": "wildhands predict",
                                  "camera_intrinsics": intrinsics.to_dict()}, video_name or "video")
