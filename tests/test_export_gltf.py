"""The glTF export seen from outside: read back by a second reader (pygltflib), skinned by the
file's own joints and weights, and seen through the file's own camera; plus the camera-space
placement and the intrinsics' sources."""
import json
import math

import numpy as np
import pytest
from PIL import Image

from wildhands.app.predict import main, predict_paths
from wildhands.hand import keypoints as kp
from wildhands.hand.camera_space import (Intrinsics, default_intrinsics, intrinsics_from_fov, photo_intrinsics,
                                         place_hand)

pygltflib = pytest.importorskip("pygltflib")

_COMPONENTS = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}
_WIDTH = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_MANO_KEYPOINTS = [kp.MANO_TO_OPENPOSE.index(j) for j in range(kp.NUM_MANO_JOINTS)]  # OpenPose slot of each joint


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Two synthetic photos (two hands, one left) predicted and exported: hands placed by the
    perspective pose fit (the default) near and far, and by the translation fit alone."""
    from wildhands.config import load_profile
    from wildhands.data.synthetic import write_scenes

    root = tmp_path_factory.mktemp("gltf")
    write_scenes(root / "photos", 2, load_profile("smoke"))
    outputs = {}
    for name, focal, fit in (("near", None, "pose"), ("far", 400000.0, "pose"), ("translation", None, "translation")):
        summary = predict_paths([root / "photos"], root / name, keypoints=root / "photos" / "keypoints.json",
                                progress=False, log=lambda *_: None, export="glb", space="camera", focal=focal,
                                camera_fit=fit)
        assert summary["processed"] == 2
        outputs[name] = root / name
    return outputs


@pytest.fixture(scope="module")
def fixture_photos(tmp_path_factory):
    """The rendered fixture photos (tests/fixtures/labelled_hands) from their labelled keypoints,
    placed by the pose fit and by the translation fit alone; refined under the photo's camera (the
    profile's [refine] projection) and under the weak-perspective camera ("-weak")."""
    from pathlib import Path

    folder = Path(__file__).parent / "fixtures" / "labelled_hands"
    root = tmp_path_factory.mktemp("fixture_photos")
    labels = json.loads((folder / "labels.json").read_text())
    keypoints = {entry["image"]: [{"handedness": entry["side"], "keypoints_2d": entry["keypoints_2d"]}]
                 for entry in labels}
    (root / "keypoints.json").write_text(json.dumps(keypoints))
    outputs = {}
    for fit in ("pose", "translation", "pose-weak", "translation-weak"):
        summary = predict_paths([folder / entry["image"] for entry in labels], root / fit,
                                keypoints=root / "keypoints.json", progress=False, log=lambda *_: None,
                                export="glb", camera_fit=fit.split("-")[0],
                                config_overrides={"refine.projection": "weak"} if "weak" in fit else None)
        assert summary["processed"] == len(labels)
        outputs[fit] = [json.loads((root / fit / f"{entry['image'][:-4]}.json").read_text()) for entry in labels]
    return outputs


def _read(glb_path):
    gltf = pygltflib.GLTF2().load_binary(str(glb_path))
    blob = gltf.binary_blob()

    def accessor(index):
        acc = gltf.accessors[index]
        view = gltf.bufferViews[acc.bufferView]
        dtype = np.dtype(_COMPONENTS[acc.componentType])
        width = _WIDTH[acc.type]
        start = (view.byteOffset or 0) + (acc.byteOffset or 0)
        data = np.frombuffer(blob, dtype, acc.count * width, start)
        return data.reshape(acc.count, width) if width > 1 else data

    return gltf, accessor


def _local_matrix(node, animated=None):
    """The node's local matrix; ``animated``: {path: value} sampled from an animation, in place of
    the node's own rotation, translation or scale."""
    from scipy.spatial.transform import Rotation

    animated = animated or {}
    if node.matrix:
        return np.asarray(node.matrix, np.float64).reshape(4, 4).T
    m = np.eye(4)
    rotation = animated.get("rotation", node.rotation)
    if rotation is not None:
        m[:3, :3] = Rotation.from_quat(rotation).as_matrix()
    scale = animated.get("scale", node.scale)
    m[:3, :3] *= np.asarray([1, 1, 1] if scale is None else scale)
    translation = animated.get("translation", node.translation)
    m[:3, 3] = [0, 0, 0] if translation is None else translation
    return m


def _world_matrices(gltf, animated=None):
    """World matrix of every node; ``animated``: {node: {path: value}} (``_sample_animation``)."""
    world = {}
    animated = animated or {}

    def visit(index, parent):
        world[index] = parent @ _local_matrix(gltf.nodes[index], animated.get(index))
        for child in gltf.nodes[index].children or []:
            visit(child, world[index])

    for root in gltf.scenes[gltf.scene].nodes:
        visit(root, np.eye(4))
    return world


def _camera_frame(gltf, world):
    """World -> our camera frame (x right, y down, z forward) through the file's camera node."""
    camera_node = next(i for i, n in enumerate(gltf.nodes) if n.camera is not None)
    return np.diag([1.0, -1.0, -1.0, 1.0]) @ np.linalg.inv(world[camera_node])


def _skinned_hands(glb_path):
    """Per skinned mesh: (vertices, joint positions), both in the camera frame, from the file alone."""
    gltf, accessor = _read(glb_path)
    return gltf, _skin_meshes(gltf, accessor, _world_matrices(gltf))


def _skin_meshes(gltf, accessor, world):
    """Per skinned mesh: (vertices, joint positions) in the camera frame, the nodes at ``world``."""
    to_camera = _camera_frame(gltf, world)
    hands = []
    for node in gltf.nodes:
        if node.skin is None:
            continue
        skin = gltf.skins[node.skin]
        joint_world = np.stack([world[j] for j in skin.joints])
        ibm = accessor(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1).astype(np.float64)
        primitive = gltf.meshes[node.mesh].primitives[0]
        attributes = primitive.attributes.__dict__
        rest = accessor(attributes["POSITION"]).astype(np.float64)
        blend = np.zeros((len(rest), 4, 4))
        sets = [k for k in range(8) if attributes.get(f"JOINTS_{k}") is not None]
        for k in sets:
            joints = accessor(attributes[f"JOINTS_{k}"]).astype(np.int64)
            weights = accessor(attributes[f"WEIGHTS_{k}"]).astype(np.float64)
            blend += np.einsum("vc,vcab->vab", weights, (joint_world @ ibm)[joints])
        posed = np.einsum("vab,vb->va", blend[:, :3, :3], rest) + blend[:, :3, 3]
        camera_vertices = posed @ to_camera[:3, :3].T + to_camera[:3, 3]
        camera_joints = joint_world[:, :3, 3] @ to_camera[:3, :3].T + to_camera[:3, 3]
        hands.append((camera_vertices, camera_joints))
    return hands


def _project_with_file_camera(gltf, points_camera, width, height):
    """Pixels (centres at integers) of camera-frame points through the glTF perspective camera."""
    camera = gltf.cameras[0].perspective
    tan = math.tan(camera.yfov / 2)
    x_ndc = points_camera[:, 0] / points_camera[:, 2] / (camera.aspectRatio * tan)
    y_ndc = -points_camera[:, 1] / points_camera[:, 2] / tan
    return np.stack([(x_ndc + 1) / 2 * width - 0.5, (1 - y_ndc) / 2 * height - 0.5], axis=1)


def _records(folder):
    return [json.loads(p.read_text()) for p in sorted(folder.glob("scene_*.json"))]


@pytest.mark.parametrize("name", ["near", "translation"])
def test_file_skinning_reproduces_our_vertices(scene, name):
    """The file's skeleton is posed by the camera-space fit (``camera_space_fit``) where it ran, by
    the weak-perspective parameters where only the translation was fitted."""
    checked = 0
    for record in _records(scene[name]):
        gltf, hands = _skinned_hands(scene[name] / f"{record['image'].rsplit('/', 1)[-1][:-4]}.glb")
        assert len(hands) == len(record["hands"])
        for (vertices, _), hand in zip(hands, record["hands"]):
            ours = np.asarray(hand["vertices_camera"])
            assert np.abs(vertices - ours).max() < 1e-5
            assert ("camera_space_fit" in hand) == (name != "translation")
            checked += 1
    assert checked >= 2


def _skeleton_errors(record):
    """Per hand: the largest pixel error over the 16 skeleton joints of the perspective projection of
    ``joints_3d_camera`` from ``keypoints_2d``, and the JSON's RMS over the 21 keypoints."""
    camera = Intrinsics.from_dict(record["camera_intrinsics"])
    out = []
    for hand in record["hands"]:
        pixels = camera.project(np.asarray(hand["joints_3d_camera"]))[_MANO_KEYPOINTS]
        out.append((float(np.abs(pixels - np.asarray(hand["keypoints_2d"])[_MANO_KEYPOINTS]).max()),
                    hand["reprojection_rms_px"]))
    return out


def test_pose_fit_brings_the_camera_onto_keypoints_2d(fixture_photos):
    """On the rendered fixture photos (hands 0.27-0.35 m from a 67-degree camera), for hands refined under
    the weak-perspective camera (and turned by the ray to them), fitting rotation, translation and pose
    under perspective cuts the reprojection from ``keypoints_2d``: RMS under 60 % of the translation
    fit's, the largest error under 80 % (2026-12-03: RMS 3.3 against 6.4 px and 0.57 against 2.3; 12.7 and
    5.4 for the translation fit before the turn; 2026-12-04, with MediaPipe's world landmarks taken in the
    crop's view, the translation fit is closer: RMS 0.96 against 2.16, largest 2.55 against 3.91), and
    leaves the root-relative output as it was."""
    for fitted, fixed in zip(fixture_photos["pose-weak"], fixture_photos["translation-weak"]):
        for (pose_max, pose_rms), (fixed_max, fixed_rms) in zip(_skeleton_errors(fitted), _skeleton_errors(fixed)):
            assert pose_rms < 0.6 * fixed_rms and pose_max < 0.8 * fixed_max, (pose_rms, fixed_rms, pose_max,
                                                                              fixed_max)
        for a, b in zip(fitted["hands"], fixed["hands"]):
            for key in ("keypoints_2d", "joints_3d", "vertices", "camera", "params"):
                assert json.dumps(a[key]) == json.dumps(b[key]), key


def test_camera_projects_joints_onto_keypoints_2d_within_half_a_pixel(fixture_photos):
    """Refined under the photo's camera, a near hand is placed exactly: the file's camera projects its
    joints onto ``keypoints_2d`` within 0.5 px, with or without the pose fit (which it then skips), and
    the same output either way. Weak-perspective hands keep pixels of error: their palm is rigid."""
    for fitted, fixed in zip(fixture_photos["pose"], fixture_photos["translation"]):
        for skeleton_max, rms in _skeleton_errors(fitted) + _skeleton_errors(fixed):
            assert skeleton_max <= 0.5 and rms < 0.01, (skeleton_max, rms)
        assert all(hand["camera_space_fit"]["iterations"] == 0 for hand in fitted["hands"])
        for a, b in zip(fitted["hands"], fixed["hands"]):
            for key in ("keypoints_2d", "joints_3d", "translation_m", "camera", "params"):
                assert json.dumps(a[key]) == json.dumps(b[key]), key
    weak = [m for record in fixture_photos["pose-weak"] for m, _ in _skeleton_errors(record)]
    assert max(weak) > 0.5


def test_file_camera_projects_joints_onto_our_keypoints(scene):
    """The file's camera and joints give our ``keypoints_2d`` (and their perspective projection in the
    JSON), near and far (a long lens: the hand ~200 m away)."""
    for name, keys in (("near", "keypoints_2d"), ("near", "keypoints_2d_camera"), ("far", "keypoints_2d")):
        for record in _records(scene[name]):
            gltf, hands = _skinned_hands(scene[name] / f"{record['image'].rsplit('/', 1)[-1][:-4]}.glb")
            for (_, joints), hand in zip(hands, record["hands"]):
                pixels = _project_with_file_camera(gltf, joints, record["width"], record["height"])
                ours = np.asarray(hand[keys])[_MANO_KEYPOINTS]
                assert np.abs(pixels - ours).max() < 0.5, (name, np.abs(pixels - ours).max())


def test_rig_is_a_hierarchy_with_rotations_and_weights_from_the_model(scene):
    from wildhands.hand.hand_model import load_mano_arrays, resolve_hand_model_path

    arrays = load_mano_arrays(resolve_hand_model_path())
    gltf, _ = _read(next(scene["near"].glob("*.glb")))
    skin = gltf.skins[0]
    assert len(skin.joints) == kp.NUM_MANO_JOINTS
    parents = arrays["kintree_table"][0].astype(np.int64)
    for j, node_index in enumerate(skin.joints[1:], start=1):
        parent_node = skin.joints[int(parents[j])]
        assert node_index in gltf.nodes[parent_node].children
    rotations = [gltf.nodes[j].rotation for j in skin.joints[1:]]
    assert max(abs(1 - abs(q[3])) for q in rotations) > 1e-3   # the pose is in the joints, not baked


def test_left_and_right_hands_and_cli_flags(tmp_path, scene):
    sides = {h["handedness"] for r in _records(scene["near"]) for h in r["hands"]}
    assert sides == {"left", "right"}
    record = _records(scene["far"])[0]
    assert record["camera_intrinsics"]["source"] == "flag" and record["camera_intrinsics"]["fx"] == 400000.0
    with pytest.raises(SystemExit):
        main(["x.png", "--out", str(tmp_path), "--focal", "500", "--fov", "60"])
    assert main(["x.png", "--out", str(tmp_path), "--focal", "-3"]) == 2   # refused before any photo is read


def test_placement_recovers_a_known_translation():
    from wildhands.hand.hand_model import HandModel

    model = HandModel()
    keys = model().keypoints[0].double().numpy()
    joints = keys - keys[0]
    camera = Intrinsics.centred(800.0, 640, 480, "flag")
    truth = np.array([0.05, -0.03, 0.45])
    pixels = camera.project(joints + truth)
    mean_depth = truth[2] + joints[:, 2].mean()
    placed = place_hand(joints, joints, pixels, camera.focal / mean_depth * 1.05, camera)
    assert np.abs(placed["translation_m"] - truth).max() < 1e-6
    assert placed["reprojection_rms_px"] < 1e-6
    assert abs(placed["translation_weak_perspective_m"][2] / truth[2] - 1 / 1.05) < 0.05


def test_intrinsics_sources(tmp_path):
    photo = tmp_path / "exif.jpg"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[41989] = 52      # FocalLengthIn35mmFilm
    Image.new("RGB", (400, 300)).save(photo, exif=exif)
    from_exif = photo_intrinsics(photo, 400, 300)
    assert from_exif.source == "exif" and from_exif.focal == pytest.approx(52 * 500 / math.hypot(36, 24))
    camera_photo = tmp_path / "camera.jpg"
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub[37386] = 50.0                       # FocalLength, mm
    sub[41486] = 4000 / (36 / 25.4)         # FocalPlaneXResolution: 4000 px across a 36 mm sensor, per inch
    sub[41488] = 2                          # FocalPlaneResolutionUnit: inch
    sub[40962], sub[40963] = 4000, 3000     # the camera's pixel size; the file is a 400 x 300 copy
    Image.new("RGB", (400, 300)).save(camera_photo, exif=exif)
    assert photo_intrinsics(camera_photo, 400, 300).focal == pytest.approx(50 / 36 * 400, rel=1e-3)
    plain = tmp_path / "plain.png"
    Image.new("RGB", (400, 300)).save(plain)
    assert photo_intrinsics(plain, 400, 300) == default_intrinsics(400, 300)
    assert intrinsics_from_fov(90, 400, 300).fx == pytest.approx(200)
    shifted = photo_intrinsics(plain, 400, 300, focal_px=500, principal_point=(210, 140))
    assert (shifted.fx, shifted.cx, shifted.cy, shifted.source) == (500, 210, 140, "flag")
    with pytest.raises(ValueError, match="--fov"):
        intrinsics_from_fov(180, 400, 300)
    with pytest.raises(ValueError, match="--focal"):
        photo_intrinsics(plain, 400, 300, focal_px=-1)


_BLENDER_SCRIPT = r"""
import json, sys
import bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=sys.argv[1])

def world_vertices(obj):
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    out = [list(evaluated.matrix_world @ v.co) for v in mesh.vertices]
    evaluated.to_mesh_clear()
    return out

meshes = {o.name: o for o in bpy.data.objects if o.type == "MESH"}
armatures = [o for o in bpy.data.objects if o.type == "ARMATURE"]
report = {"bones": [len(a.data.bones) for a in armatures],
          "cameras": sum(o.type == "CAMERA" for o in bpy.data.objects),
          "vertices": {name: world_vertices(o) for name, o in meshes.items()}}
bone = next(b for b in armatures[0].pose.bones if b.name.endswith("index_pip"))
bone.rotation_mode = "XYZ"
bone.rotation_euler[0] += 0.5
bpy.context.view_layer.update()
report["bent"] = {name: world_vertices(o) for name, o in meshes.items()}
print("REPORT" + json.dumps(report))
"""


def _blender_python():
    """A Python with Blender's ``bpy``: this one, or the one named by WILDHANDS_BPY_PYTHON."""
    import importlib.util
    import os
    import sys

    if importlib.util.find_spec("bpy") is not None:
        return sys.executable
    return os.environ.get("WILDHANDS_BPY_PYTHON") or None


@pytest.mark.blender
def test_blender_imports_the_rig(scene, tmp_path):
    """Optional: Blender's own glTF importer (``bpy``) reads an armature of 16 bones per hand and the
    camera, poses the mesh as we do, and bending the index PIP bone moves part of the finger."""
    import subprocess

    python = _blender_python()
    if python is None:
        pytest.skip("no bpy here (set WILDHANDS_BPY_PYTHON to a Python with Blender's bpy, e.g. bpy 4.5 on 3.11)")
    (tmp_path / "blender_check.py").write_text(_BLENDER_SCRIPT)
    sides = set()
    for record in _records(scene["near"]):
        glb = scene["near"] / f"{record['image'].rsplit('/', 1)[-1][:-4]}.glb"
        done = subprocess.run([python, str(tmp_path / "blender_check.py"), str(glb)], capture_output=True, text=True,
                              timeout=600)
        line = next((l for l in done.stdout.splitlines() if l.startswith("REPORT")), None)
        assert line is not None, done.stdout[-2000:] + done.stderr[-2000:]
        report = json.loads(line[len("REPORT"):])
        assert report["bones"] == [kp.NUM_MANO_JOINTS] * len(record["hands"]) and report["cameras"] == 1
        # Blender is z up: (x, y, z) in Blender = (x, z, -y) in our camera frame (x right, y down, z forward)
        for i, hand in enumerate(record["hands"]):
            name = f"hand{i}_{hand['handedness']}"
            ours = np.asarray(hand["vertices_camera"])
            blender = np.asarray(report["vertices"][name])
            assert np.abs(blender - ours[:, [0, 2, 1]] * [1, 1, -1]).max() < 1e-5
            sides.add(hand["handedness"])
        first = f"hand0_{record['hands'][0]['handedness']}"
        moved = np.linalg.norm(np.subtract(report["bent"][first], report["vertices"][first]), axis=1)
        assert 0 < (moved > 1e-4).sum() < 0.2 * len(moved)
    assert sides == {"left", "right"}


@pytest.mark.parametrize("mirrored", [False, True])
@pytest.mark.parametrize("pose_space", ["pca", "full"])
def test_rig_skins_to_the_hand_model(pose_space, mirrored):
    """The rig of any parameters (10 PCA coefficients, or the refinement's 45 axis-angles) skins to
    the hand model's own mesh, rotated about the root, mirrored for a left hand and translated."""
    import torch
    from scipy.spatial.transform import Rotation

    from wildhands.app.export_gltf import rig_hand
    from wildhands.hand.hand_model import HandModel

    model = HandModel()
    decoder = model if pose_space == "pca" else HandModel(num_pca_comps=45)
    rng = np.random.default_rng(1)
    betas, pose = rng.normal(size=10), rng.normal(scale=0.3, size=decoder.num_pca_comps)
    rotation = Rotation.random(random_state=2)
    out = decoder(betas=torch.tensor(betas[None], dtype=torch.float32),
                  pose=torch.tensor(pose[None], dtype=torch.float32))
    vertices, root = out.vertices[0].double().numpy(), out.keypoints[0, kp.ROOT].double().numpy()
    translation = np.array([0.1, -0.05, 0.6])
    expected = (vertices - root) @ rotation.as_matrix().T * ([-1, 1, 1] if mirrored else 1) + translation
    rig = rig_hand(model, {"betas": betas, "pose": pose, "pose_space": pose_space,
                           "global_orient": rotation.as_rotvec()}, translation, mirrored)
    assert np.abs(rig.skinned_vertices() - expected).max() < 1e-6


# ----------------------------------------------------------------------------- videos: tracks as glTF animations

VIDEO_FPS = 30.0
HIDDEN_FRAME = 4                      # the detector loses the hand there


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 12-frame synthetic video of a left hand (lost in frame 4) through the offline pipeline;
    its track file exported as an animated .glb, as ``--export glb`` does."""
    import cv2

    from wildhands.app.export_gltf import export_video
    from wildhands.app.video import FrameSource, KnownKeypoints, VideoPredictor, write_video_outputs
    from wildhands.config import load_profile
    from wildhands.data.synthetic_video import render_video
    from wildhands.hand.hand_model import hand_model_from_config

    root = tmp_path_factory.mktemp("video")
    config = load_profile("smoke")
    clip = render_video(hand_model_from_config(config), config, frames=12, width=160, height=120, side="left")
    (root / "clip").mkdir()
    for t, frame in enumerate(clip.frames):
        cv2.imwrite(str(root / "clip" / f"frame_{t:04d}.png"), np.ascontiguousarray(frame[..., ::-1]))
    source = FrameSource(root / "clip", sequence=True, fps=VIDEO_FPS)
    keys = [k if t != HIDDEN_FRAME else None for t, k in enumerate(clip.keypoints_2d)]
    predictor = VideoPredictor(mode="offline", detector=KnownKeypoints(keys, "left"))
    records, tracks = predictor.run(source, progress=False)
    write_video_outputs(root / "out", source, records, tracks, predictor.hand_model.faces)
    track_files = sorted((root / "out").glob("clip_track*.npz"))
    glb = export_video(root / "out" / "clip.glb", track_files, predictor.hand_model, source.fps, len(records),
                       video_name="clip")
    return {"glb": glb, "tracks": [dict(np.load(f)) for f in track_files], "frames": len(records)}


def _interpolate(times, values, time, interpolation, path):
    """A glTF sampler at ``time``: clamped outside its keys, STEP, LINEAR (slerp for rotations)."""
    if time <= times[0]:
        return values[0]
    if time >= times[-1]:
        return values[-1]
    i = int(np.searchsorted(times, time, side="right")) - 1
    if interpolation == "STEP":
        return values[i]
    u = (time - times[i]) / (times[i + 1] - times[i])
    if path != "rotation":
        return (1 - u) * values[i] + u * values[i + 1]
    q0, q1 = values[i] / np.linalg.norm(values[i]), values[i + 1] / np.linalg.norm(values[i + 1])
    angle = math.acos(min(1.0, float(np.dot(q0, q1))))
    if angle < 1e-12:
        return q0
    return (math.sin((1 - u) * angle) * q0 + math.sin(u * angle) * q1) / math.sin(angle)


def _sample_animation(gltf, accessor, time):
    """{node: {path: value}} of the file's first animation at ``time`` seconds, by its own channels."""
    animation = gltf.animations[0]
    sampled = {}
    for channel in animation.channels:
        sampler = animation.samplers[channel.sampler]
        times = accessor(sampler.input).astype(np.float64)
        values = accessor(sampler.output).astype(np.float64)
        value = _interpolate(times, values, time, sampler.interpolation, channel.target.path)
        sampled.setdefault(channel.target.node, {})[channel.target.path] = value
    return sampled


def _hands_at(glb_path, time):
    """Per skinned mesh: (vertices, joints) in the camera frame, the animation sampled at ``time``."""
    gltf, accessor = _read(glb_path)
    return _skin_meshes(gltf, accessor, _world_matrices(gltf, _sample_animation(gltf, accessor, time)))


def _frame_time(frame, fps=VIDEO_FPS):
    return float(np.float32(frame / fps))     # the file's key times are float32


def _placed_vertices(track, k):
    """The track's vertices of its k-th frame placed in the video's (default) camera, computed here."""
    from wildhands.data.crops import CropTransform
    from wildhands.hand.camera_space import default_intrinsics, image_pixels_per_metre, place_hand

    crop = CropTransform.from_dict(json.loads(str(track["crop_transform"]))[k])
    placed = place_hand(track["joints_3d"][k], track["vertices"][k], track["keypoints_2d"][k],
                        image_pixels_per_metre({"scale_px_per_m": track["scale_crop_px_per_m"][k]}, crop),
                        default_intrinsics(crop.image_width, crop.image_height))
    return placed["vertices_camera"]


def test_video_animation_skins_to_the_track_vertices(video):
    """Sampled by the file's own channels and skinned by its joints and weights, every frame checked
    equals the track file's vertices (placed in the camera) within 1e-5 m; the file unanimated
    shows the first frame."""
    (track,) = video["tracks"]
    assert str(track["side"]) == "left" and HIDDEN_FRAME not in track["frames"]
    checked = []
    for frame in (0, 3, 5, 8, 11):
        (k,) = np.flatnonzero(track["frames"] == frame)
        ((vertices, _),) = _hands_at(video["glb"], _frame_time(frame))
        assert np.abs(vertices - _placed_vertices(track, k)).max() < 1e-5, frame
        checked.append(vertices)
    assert np.abs(checked[0] - checked[-1]).max() > 1e-3          # the hand moves
    _, ((still, _),) = _skinned_hands(video["glb"])
    assert np.abs(still - _placed_vertices(track, 0)).max() < 1e-5



@pytest.fixture(scope="module")
def video_pose(tmp_path_factory):
    """The 12-frame left-hand video of ``video`` (lost in frame 4), its offline track fitted under the
    weak-perspective camera and placed by the perspective pose fit frame by frame (``--export glb``'s
    default), exported; with ``[refine] projection = "pinhole"`` (the profile's) the track is fitted
    under the video's camera and placed exactly: ``test_offline_track_under_the_videos_camera``."""
    from wildhands.app.export_gltf import export_video
    from wildhands.app.video import KnownKeypoints, VideoPredictor, write_video_outputs
    from wildhands.config import load_profile
    from wildhands.data.synthetic_video import render_video
    from wildhands.hand.hand_model import hand_model_from_config

    root = tmp_path_factory.mktemp("video_pose")
    config = load_profile("smoke")
    clip = render_video(hand_model_from_config(config), config, frames=12, width=160, height=120, side="left")
    source = _Frames(clip.frames, VIDEO_FPS)
    keys = [k if t != HIDDEN_FRAME else None for t, k in enumerate(clip.keypoints_2d)]
    predictor = VideoPredictor(mode="offline", detector=KnownKeypoints(keys, "left"), camera_fit="pose",
                               config_overrides={"refine.projection": "weak"})
    records, tracks = predictor.run(source, progress=False)
    write_video_outputs(root / "out", source, records, tracks, predictor.hand_model.faces)
    track_files = sorted((root / "out").glob("clip_track*.npz"))
    glb = export_video(root / "out" / "clip.glb", track_files, predictor.hand_model, source.fps, len(records),
                       video_name="clip")
    hands = {r.index: r.hands[0].result for r in records if r.hands}
    return {"glb": glb, "track": dict(np.load(track_files[0])), "hands": hands, "files": track_files}


class _Frames:
    """An in-memory ``app.video.FrameSource``."""

    def __init__(self, images, fps):
        self.images, self.fps, self.stem, self.count = images, fps, "clip", len(images)

    def frames(self):
        for index, image in enumerate(self.images):
            yield index, image, None


def test_video_pose_fit_animation_skins_to_vertices_camera(video_pose):
    """Each frame's hand placed by the perspective fit, warm-started from the previous frame seen;
    the file, sampled by its own channels and skinned by its own joints and weights, gives the frames'
    ``vertices_camera`` within 1e-5 m, and its camera projects the joints onto ``keypoints_2d_camera``."""
    hands, track = video_pose["hands"], video_pose["track"]
    assert HIDDEN_FRAME not in hands and track["camera_pose"].shape == (11, 45)
    assert str(track["camera_pose_space"]) == "full"
    warm = [hands[t].extras["camera_space_fit"]["warm_start"] for t in sorted(hands)]
    assert warm == [False] + [True] * 10                 # a track's first frame starts cold
    intrinsics = Intrinsics.from_dict(json.loads(str(track["camera_intrinsics"])))
    for frame in (0, 3, 5, 11):
        ((vertices, joints),) = _hands_at(video_pose["glb"], _frame_time(frame))
        assert np.abs(vertices - hands[frame].extras["vertices_camera"]).max() < 1e-5, frame
        assert np.abs(intrinsics.project(joints) - hands[frame].extras["keypoints_2d_camera"][_MANO_KEYPOINTS]
                      ).max() < 1e-2, frame
        assert hands[frame].extras["reprojection_rms_px"] < 1.0, frame


def test_offline_track_under_the_videos_camera(tmp_path):
    """The profile's offline fit projects by the video's pinhole camera: every frame's hand lies on its
    keypoints under that camera, so the pose fit has nothing left to do (iterations 0)."""
    from wildhands.app.video import KnownKeypoints, VideoPredictor
    from wildhands.config import load_profile
    from wildhands.data.synthetic_video import render_video
    from wildhands.hand.hand_model import hand_model_from_config

    config = load_profile("smoke")
    clip = render_video(hand_model_from_config(config), config, frames=6, width=160, height=120, side="left")
    predictor = VideoPredictor(mode="offline", detector=KnownKeypoints(list(clip.keypoints_2d), "left"),
                               camera_fit="pose")
    assert predictor.offline_pinhole
    records, _ = predictor.run(_Frames(clip.frames, VIDEO_FPS), progress=False)
    for record in records:
        hand = record.hands[0].result
        assert hand.method == "network+temporal (offline)" and "pinhole_crop_px" in hand.camera
        assert hand.extras["camera_space_fit"]["iterations"] == 0
        assert hand.extras["reprojection_rms_px"] < 1e-3
        assert np.linalg.norm(hand.keypoints_2d - clip.keypoints_2d[record.index], axis=1).mean() < 5.0


def test_video_export_refuses_another_camera_than_the_fit(video_pose):
    from wildhands.app.export_gltf import export_video
    from wildhands.hand.hand_model import HandModel

    with pytest.raises(ValueError, match="fitted under another camera"):
        export_video(video_pose["glb"].with_name("other.glb"), video_pose["files"], HandModel(), VIDEO_FPS, 12,
                     intrinsics_from_fov(40.0, 160, 120))

def test_video_animation_channels_and_camera(video):
    from wildhands.hand.camera_space import default_intrinsics

    gltf, accessor = _read(video["glb"])
    (animation,) = gltf.animations
    skin = gltf.skins[0]
    by_target = {(c.target.node, c.target.path): animation.samplers[c.sampler] for c in animation.channels}
    assert {n for n, p in by_target if p == "rotation"} == set(skin.joints)
    assert {(n, p) for n, p in by_target if p != "rotation"} == {(skin.joints[0], "translation"),
                                                                 (skin.joints[0], "scale")}
    rotation = by_target[(skin.joints[5], "rotation")]
    assert rotation.interpolation == "LINEAR" and by_target[(skin.joints[0], "scale")].interpolation == "STEP"
    frames = video["tracks"][0]["frames"]
    assert np.allclose(accessor(rotation.input), frames / VIDEO_FPS, atol=1e-6)
    scale = by_target[(skin.joints[0], "scale")]
    assert accessor(scale.input).tolist() == pytest.approx([0.0, HIDDEN_FRAME / VIDEO_FPS, 5 / VIDEO_FPS])
    camera = gltf.cameras[0].perspective
    intrinsics = default_intrinsics(160, 120)
    assert camera.yfov == pytest.approx(2 * math.atan(60 / intrinsics.fy))
    assert camera.aspectRatio == pytest.approx(160 / 120)
    assert gltf.scenes[0].extras["frames"] == video["frames"] == 12


def test_video_hand_missing_in_a_frame_is_hidden_there(video):
    """Scale 0 on the root joint collapses the skinned hand to a point: nothing to draw."""
    for frame, shown in ((3, True), (HIDDEN_FRAME, False), (5, True)):
        ((vertices, _),) = _hands_at(video["glb"], _frame_time(frame))
        assert (np.ptp(vertices, axis=0).max() > 0.05) == shown, frame
    ((vertices, _),) = _hands_at(video["glb"], _frame_time(HIDDEN_FRAME + 0.5))   # still hidden between frames
    assert np.ptp(vertices, axis=0).max() < 1e-6        # a point (float32 weights sum to 1 +- 1e-7)


def test_two_tracks_animate_and_hide_independently(tmp_path):
    """Tracks built from known parameters (one right, one left, seen in different frames, the
    root turning so that SciPy's quaternions of it change sign): the file skins to the hand
    model's own meshes, hides each hand where it is not seen, and interpolates between frames
    along the short way."""
    import torch
    from scipy.spatial.transform import Rotation

    from wildhands.app.export_gltf import track_animation, write_track_animation
    from wildhands.hand.hand_model import HandModel

    axis = np.array([0.0, -0.6, -0.8])
    model = HandModel()
    rng = np.random.default_rng(5)
    camera = Intrinsics.centred(500.0, 320, 240, "flag")
    seen = {"right": np.array([0, 1, 2, 3, 4, 5, 6, 7]), "left": np.array([2, 3, 4, 7, 8])}
    truth, tracks = {}, []
    for side, frames in seen.items():
        betas = rng.normal(size=10)
        pose = rng.normal(scale=0.3, size=(len(frames), model.num_pca_comps))
        angles = 0.5 * frames + (0.0 if side == "right" else 2.5)
        rotations = Rotation.from_rotvec(angles[:, None] * axis)
        translations = np.stack([0.1 * np.sin(frames), -0.05 + 0.01 * frames, 0.5 + 0.02 * frames], 1)
        out = model(betas=torch.tensor(np.repeat(betas[None], len(frames), 0), dtype=torch.float32),
                    pose=torch.tensor(pose, dtype=torch.float32))
        vertices = out.vertices.double().numpy() - out.keypoints[:, kp.ROOT, None].double().numpy()
        posed = np.einsum("kab,kvb->kva", rotations.as_matrix(), vertices) * ([-1, 1, 1] if side == "left" else 1)
        truth[side] = {int(f): posed[k] + translations[k] for k, f in enumerate(frames)}
        tracks.append(track_animation(model, frames, betas, rotations.as_rotvec(), pose, translations,
                                      side == "left", name=f"track_{side}"))
    glb = write_track_animation(tmp_path / "two.glb", tracks, camera, fps=24.0, frame_count=10)
    for frame in range(10):
        hands = _hands_at(glb, _frame_time(frame, 24.0))
        for (vertices, _), side in zip(hands, seen):
            if frame in truth[side]:
                assert np.abs(vertices - truth[side][frame]).max() < 1e-5, (side, frame)
            else:
                assert np.ptp(vertices, axis=0).max() < 1e-6, (side, frame)
    gltf, accessor = _read(glb)
    root = gltf.skins[0].joints[0]
    raw = Rotation.from_matrix(tracks[0].local_rotations[[3, 4], 0]).as_quat()
    assert np.dot(raw[0], raw[1]) < 0                          # frames 3 and 4 as SciPy writes them: opposite signs
    between = _sample_animation(gltf, accessor, _frame_time(3.5, 24.0))[root]["rotation"]
    expected = Rotation.from_rotvec(1.75 * axis)
    assert (Rotation.from_quat(between) * expected.inv()).magnitude() < 1e-4
    assert tracks[0].rig.extras["betas_shared"] and tracks[1].rig.extras["first_frame"] == 2


def test_video_export_refuses_bad_input(tmp_path):
    from wildhands.app.export_gltf import export_video, read_track, track_animation
    from wildhands.hand.hand_model import HandModel

    model = HandModel()
    with pytest.raises(ValueError, match="frames must be increasing"):
        track_animation(model, [3, 2], np.zeros(10), np.zeros((2, 3)), np.zeros((2, 10)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="pose must be one row"):
        track_animation(model, [0, 1], np.zeros(10), np.zeros((2, 3)), np.zeros((3, 10)), np.zeros((2, 3)))
    with pytest.raises(FileNotFoundError, match="no such track file"):
        export_video(tmp_path / "x.glb", [tmp_path / "missing.npz"], model, 30.0)
    np.savez(tmp_path / "other.npz", frames=np.arange(3))
    with pytest.raises(ValueError, match="not a video track file"):
        read_track(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="track_files: no track"):
        export_video(tmp_path / "x.glb", [], model, 30.0)


_BLENDER_VIDEO_SCRIPT = r"""
import json, sys
import bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.context.scene.render.fps = int(sys.argv[2])          # the importer keys time t at frame t * fps
bpy.ops.import_scene.gltf(filepath=sys.argv[1])
mesh = next(o for o in bpy.data.objects if o.type == "MESH" and o.name.startswith("track"))
report = {"actions": len(bpy.data.actions), "frames": {}}
for frame in json.loads(sys.argv[3]):
    bpy.context.scene.frame_set(frame)
    evaluated = mesh.evaluated_get(bpy.context.evaluated_depsgraph_get())
    data = evaluated.to_mesh()
    report["frames"][str(frame)] = [list(evaluated.matrix_world @ v.co) for v in data.vertices]
    evaluated.to_mesh_clear()
print("REPORT" + json.dumps(report))
"""


@pytest.mark.blender
def test_blender_plays_the_video_animation(video, tmp_path):
    """Optional: Blender's glTF importer turns the animation into an action whose frames pose the
    mesh as the track's vertices, and hides the hand where it was not seen."""
    import subprocess

    python = _blender_python()
    if python is None:
        pytest.skip("no bpy here (set WILDHANDS_BPY_PYTHON to a Python with Blender's bpy, e.g. bpy 4.5 on 3.11)")
    (tmp_path / "blender_video.py").write_text(_BLENDER_VIDEO_SCRIPT)
    frames = [0, 3, HIDDEN_FRAME, 5, 11]
    done = subprocess.run([python, str(tmp_path / "blender_video.py"), str(video["glb"]), str(int(VIDEO_FPS)),
                           json.dumps(frames)], capture_output=True, text=True, timeout=600)
    line = next((l for l in done.stdout.splitlines() if l.startswith("REPORT")), None)
    assert line is not None, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(line[len("REPORT"):])
    assert report["actions"] >= 1
    (track,) = video["tracks"]
    for frame in frames:
        blender = np.asarray(report["frames"][str(frame)])
        if frame == HIDDEN_FRAME:
            assert np.ptp(blender, axis=0).max() < 1e-6
            continue
        (k,) = np.flatnonzero(track["frames"] == frame)
        # Blender is z up: (x, y, z) in Blender = (x, z, -y) in our camera frame
        ours = _placed_vertices(track, k)
        assert np.abs(blender - ours[:, [0, 2, 1]] * [1, 1, -1]).max() < 1e-5, frame


def test_track_with_changing_betas_takes_their_mean_and_says_so():
    """Online or per-frame smoothing gives a shape per frame; one skin cannot follow it."""
    from wildhands.app.export_gltf import shaped_rest, track_animation
    from wildhands.hand.hand_model import HandModel

    model = HandModel()
    betas = np.random.default_rng(2).normal(size=(3, 10))
    track = track_animation(model, [0, 1, 2], betas, np.zeros((3, 3)), np.zeros((3, 10)), np.zeros((3, 3)))
    assert not track.rig.extras["betas_shared"] and "mean" in track.rig.extras["shape_note"]
    assert np.allclose(track.rig.rest_vertices, shaped_rest(model, betas.mean(axis=0))[0])
