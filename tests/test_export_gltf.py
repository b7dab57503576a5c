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
from wildhands.hand.camera_space import (Intrinsics, default_intrinsics,
                                         intrinsics_from_fov, photo_intrinsics,
                                         place_hand)

pygltflib = pytest.importorskip("pygltflib")

_COMPONENTS = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}
_WIDTH = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_MANO_KEYPOINTS = [kp.MANO_TO_OPENPOSE.index(j) for j in range(kp.NUM_MANO_JOINTS)]  # OpenPose slot of each joint


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """One synthetic photo (two hands, one left when the scene has it) predicted and exported."""
    from wildhands.config import load_profile
    from wildhands.data.synthetic import write_scenes

    root = tmp_path_factory.mktemp("gltf")
    write_scenes(root / "photos", 2, load_profile("smoke"))
    outputs = {}
    for name, focal in (("near", None), ("far", 400000.0)):
        summary = predict_paths([root / "photos"], root / name, keypoints=root / "photos" / "keypoints.json",
                                progress=False, log=lambda *_: None, export="glb", space="camera", focal=focal)
        assert summary["processed"] == 2
        outputs[name] = root / name
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


def _local_matrix(node):
    from scipy.spatial.transform import Rotation

    if node.matrix:
        return np.asarray(node.matrix, np.float64).reshape(4, 4).T
    m = np.eye(4)
    if node.rotation:
        m[:3, :3] = Rotation.from_quat(node.rotation).as_matrix()
    m[:3, :3] *= np.asarray(node.scale or [1, 1, 1])
    m[:3, 3] = node.translation or [0, 0, 0]
    return m


def _world_matrices(gltf):
    world = {}

    def visit(index, parent):
        world[index] = parent @ _local_matrix(gltf.nodes[index])
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
    world = _world_matrices(gltf)
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
    return gltf, hands


def _project_with_file_camera(gltf, points_camera, width, height):
    """Pixels (centres at integers) of camera-frame points through the glTF perspective camera."""
    camera = gltf.cameras[0].perspective
    tan = math.tan(camera.yfov / 2)
    x_ndc = points_camera[:, 0] / points_camera[:, 2] / (camera.aspectRatio * tan)
    y_ndc = -points_camera[:, 1] / points_camera[:, 2] / tan
    return np.stack([(x_ndc + 1) / 2 * width - 0.5, (1 - y_ndc) / 2 * height - 0.5], axis=1)


def _records(folder):
    return [json.loads(p.read_text()) for p in sorted(folder.glob("scene_*.json"))]


def test_file_skinning_reproduces_our_vertices(scene):
    checked = 0
    for record in _records(scene["near"]):
        gltf, hands = _skinned_hands(scene["near"] / f"{record['image'].rsplit('/', 1)[-1][:-4]}.glb")
        assert len(hands) == len(record["hands"])
        for (vertices, _), hand in zip(hands, record["hands"]):
            ours = np.asarray(hand["vertices_camera"])
            assert np.abs(vertices - ours).max() < 1e-5
            checked += 1
    assert checked >= 2


def test_file_camera_projects_joints_onto_our_keypoints(scene):
    """The file's camera and joints give our perspective keypoints (any distance), and our
    weak-perspective ``keypoints_2d`` where perspective is weak (a long lens: the hand ~200 m away)."""
    for name, keys in (("near", "keypoints_2d_camera"), ("far", "keypoints_2d")):
        for record in _records(scene[name]):
            gltf, hands = _skinned_hands(scene[name] / f"{record['image'].rsplit('/', 1)[-1][:-4]}.glb")
            for (_, joints), hand in zip(hands, record["hands"]):
                pixels = _project_with_file_camera(gltf, joints, record["width"], record["height"])
                ours = np.asarray(hand[keys])[_MANO_KEYPOINTS]
                assert np.abs(pixels - ours).max() < 0.5, (name, np.abs(pixels - ours).max())


def test_rig_is_a_hierarchy_with_rotations_and_weights_from_the_model(scene):
    from wildhands.hand.hand_model import (load_mano_arrays,
                                           resolve_hand_model_path)

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
