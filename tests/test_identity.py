"""Identity networks: IResNet exact against a PyTorch reference, SFace against onnxruntime, the judge."""

import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import LFW_DIR
from ganfit_jax import numerics as gmath
from ganfit_jax.convert import build, identity_nets
from ganfit_jax.nets import identity
from ganfit_jax.nets.iresnet import IResNet

torch = pytest.importorskip("torch", reason="torch==2.13.0 is in requirements.txt (reference only)")
tnn = torch.nn


# --------------------------------------------------------------------------- #
# PyTorch reference, written from insightface's published iresnet.py.

def _conv3x3(cin, cout, stride=1):
  return tnn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class TorchIBasicBlock(tnn.Module):
  def __init__(self, inplanes, planes, stride=1, downsample=None):
    super().__init__()
    self.bn1 = tnn.BatchNorm2d(inplanes, eps=1e-05)
    self.conv1 = _conv3x3(inplanes, planes)
    self.bn2 = tnn.BatchNorm2d(planes, eps=1e-05)
    self.prelu = tnn.PReLU(planes)
    self.conv2 = _conv3x3(planes, planes, stride)
    self.bn3 = tnn.BatchNorm2d(planes, eps=1e-05)
    self.downsample = downsample

  def forward(self, x):
    out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
    identity = self.downsample(x) if self.downsample is not None else x
    return out + identity


class TorchIResNet(tnn.Module):
  def __init__(self, layers, num_features=512):
    super().__init__()
    self.inplanes = 64
    self.conv1 = tnn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    self.bn1 = tnn.BatchNorm2d(64, eps=1e-05)
    self.prelu = tnn.PReLU(64)
    self.layer1 = self._make_layer(64, layers[0], 2)
    self.layer2 = self._make_layer(128, layers[1], 2)
    self.layer3 = self._make_layer(256, layers[2], 2)
    self.layer4 = self._make_layer(512, layers[3], 2)
    self.bn2 = tnn.BatchNorm2d(512, eps=1e-05)
    self.dropout = tnn.Dropout(p=0.0)
    self.fc = tnn.Linear(512 * 7 * 7, num_features)
    self.features = tnn.BatchNorm1d(num_features, eps=1e-05)

  def _make_layer(self, planes, blocks, stride):
    downsample = None
    if stride != 1 or self.inplanes != planes:
      downsample = tnn.Sequential(tnn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                                  tnn.BatchNorm2d(planes, eps=1e-05))
    layers = [TorchIBasicBlock(self.inplanes, planes, stride, downsample)]
    self.inplanes = planes
    layers += [TorchIBasicBlock(planes, planes) for _ in range(1, blocks)]
    return tnn.Sequential(*layers)

  def forward(self, x):
    feats = {}
    x = self.prelu(self.bn1(self.conv1(x)))
    feats["stem"] = x
    for i in range(1, 5):
      x = getattr(self, f"layer{i}")(x)
      feats[f"layer{i}"] = x
    x = self.bn2(x)
    x = torch.flatten(x, 1)
    x = self.features(self.fc(self.dropout(x)))
    return x, feats


def _random_reference(layers, seed=0):
  torch.manual_seed(seed)
  net = TorchIResNet(layers)
  g = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, (tnn.BatchNorm2d, tnn.BatchNorm1d)):
        n = m.num_features
        m.weight.copy_(0.5 + torch.rand(n, generator=g))
        m.bias.copy_(0.2 * torch.randn(n, generator=g))
        m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
        m.running_var.copy_(0.5 + torch.rand(n, generator=g))
      elif isinstance(m, tnn.PReLU):
        m.weight.copy_(0.4 * torch.rand(m.weight.shape, generator=g))
  return net.eval()


def _images(n=2, seed=0):
  return np.random.default_rng(seed).random((n, 112, 112, 3), dtype=np.float32)


def _torch_forward(net, x01):
  with torch.no_grad():
    xt = torch.from_numpy(((x01 * 255.0 - 127.5) / 127.5).transpose(0, 3, 1, 2).copy())
    emb, feats = net(xt)
  return emb.numpy(), {k: v.numpy().transpose(0, 2, 3, 1) for k, v in feats.items()}


def _assert_matches(emb, feats, ref_emb, ref_feats):
  emb = np.asarray(emb)
  assert np.abs(emb - ref_emb).max() < 1e-4, np.abs(emb - ref_emb).max()
  assert set(feats) == set(ref_feats)
  for k in ref_feats:
    rel = np.abs(np.asarray(feats[k]) - ref_feats[k]).max() / np.abs(ref_feats[k]).max()
    assert rel < 1e-4, (k, rel)


@pytest.mark.parametrize("arch", ["r18", "r50"])
def test_iresnet_matches_pytorch_reference(arch, tmp_path):
  from ganfit_jax.nets.iresnet import LAYERS
  ref = _random_reference(LAYERS[arch])
  path = str(tmp_path / "ref.pth")
  torch.save(ref.state_dict(), path)
  out = str(tmp_path / "flax.npz")
  assert identity_nets.convert_arcface_file(path, out) == arch
  net = identity.load(out)
  x = _images()
  ref_emb, ref_feats = _torch_forward(ref, x)
  assert np.abs(ref_emb).max() > 0.1  # a meaningful comparison, not all zeros
  emb, feats = jax.jit(lambda v, im: identity.identity_features(net.module, v, im))(net.variables, x)
  _assert_matches(emb, feats, ref_emb, ref_feats)


def test_iresnet_from_onnx_with_folded_batchnorm(tmp_path):
  pytest.importorskip("onnx")
  ref = _random_reference((2, 2, 2, 2), seed=3)
  path = str(tmp_path / "ref.onnx")
  torch.onnx.export(ref, torch.zeros(1, 3, 112, 112), path, dynamo=False, do_constant_folding=True,
                    input_names=["input"], output_names=["embedding"])
  import onnx
  ops = {n.op_type for n in onnx.load(path).graph.node}
  assert "Conv" in ops
  arch, layers, variables = identity_nets.arcface_from_onnx(path)
  assert arch == "r18" and layers == (2, 2, 2, 2)
  x = _images(seed=1)
  ref_emb, ref_feats = _torch_forward(ref, x)
  emb, feats = identity.identity_features(IResNet(arch="r18"), variables, x)
  _assert_matches(emb, feats, ref_emb, ref_feats)


def test_state_dict_errors_are_clear():
  with pytest.raises(ValueError, match="not an insightface IResNet"):
    identity_nets.arcface_from_state_dict({"conv.weight": np.zeros((1, 1, 1, 1))})
  ref = _random_reference((2, 2, 2, 2))
  sd = {k: v.numpy() for k, v in ref.state_dict().items()}
  sd["margin.weight"] = np.zeros(3)
  with pytest.raises(ValueError, match="unexpected entries"):
    identity_nets.arcface_from_state_dict(sd)


# --------------------------------------------------------------------------- #
# SFace against onnxruntime on the original graph, on real aligned LFW faces.

def _aligned_lfw(n):
  from ganfit_jax.face import align, detect, image_io
  files = sorted(glob.glob(os.path.join(LFW_DIR, "images_deepfunneled", "*", "*.jpg")))
  rng = np.random.default_rng(0)
  out = []
  for f in rng.permutation(files):
    img = image_io.load_image(str(f))
    faces = detect.detect_faces(img)
    if faces:
      out.append(np.asarray(align.align_112(jnp.asarray(img), faces[0].landmarks)))
    if len(out) == n:
      break
  return np.stack(out)


@pytest.fixture(scope="module")
def lfw_aligned():
  return _aligned_lfw(50)


def _onnxruntime_sface(tmp_path):
  ort = pytest.importorskip("onnxruntime")
  import onnx
  src = str(tmp_path / "sface.onnx")
  build.sface_onnx(src)
  m = onnx.load(src)
  keep = [i for i in m.graph.input if i.name == "data"]  # drop the 29 dangling graph inputs
  del m.graph.input[:]
  m.graph.input.extend(keep)
  opts = ort.SessionOptions()
  opts.log_severity_level = 3
  return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def test_sface_matches_onnxruntime_on_lfw(lfw_aligned, tmp_path):
  sess = _onnxruntime_sface(tmp_path)
  x = lfw_aligned
  assert x.shape == (50, 112, 112, 3)
  ref = np.concatenate([sess.run(None, {"data": (x[i:i + 1] * 255.0).transpose(0, 3, 1, 2)})[0]
                        for i in range(len(x))])
  net = identity.load("sface")
  emb, feats = jax.jit(lambda v, im: identity.identity_features(net.module, v, im))(net.variables, x)
  cos = np.asarray(gmath.cosine(emb, jnp.asarray(ref)))
  assert cos.min() >= 0.9999, cos.min()
  assert feats["res7"].shape == (50, 7, 7, 1024)


def test_identity_features_batch_shapes_and_gradient(lfw_aligned):
  net = identity.load("sface")
  x = jnp.asarray(lfw_aligned[:4])
  features = jax.jit(lambda im: identity.identity_features(net.module, net.variables, im))
  emb, _ = features(x.reshape(2, 2, 112, 112, 3))
  assert emb.shape == (2, 2, 128)
  target = features(x[:1])[0][0]

  def loss(img):
    e, _ = identity.identity_features(net.module, net.variables, img[None])
    return 1.0 - gmath.cosine(e[0], target)

  g = jax.jit(jax.grad(loss))(x[1])
  assert np.all(np.isfinite(np.asarray(g)))
  assert float(jnp.abs(g).max()) > 0.0
  with pytest.raises(ValueError, match="112, 112, 3"):
    identity.identity_features(net.module, net.variables, jnp.zeros((1, 100, 100, 3)))


def test_same_person_closer_than_different_for_sface_and_judge():
  from ganfit_jax.face import align, detect, image_io
  d = os.path.join(LFW_DIR, "images_deepfunneled")
  a1 = os.path.join(d, "Aaron_Peirsol", "Aaron_Peirsol_0001.jpg")
  a2 = os.path.join(d, "Aaron_Peirsol", "Aaron_Peirsol_0002.jpg")
  b = os.path.join(d, "Abdullah_Gul", "Abdullah_Gul_0001.jpg")
  net = identity.load("sface")
  embs, judge = [], []
  for f in (a1, a2, b):
    img = image_io.load_image(f)
    lm = detect.detect_faces(img)[0].landmarks
    crop = align.align_112(jnp.asarray(img), lm)
    embs.append(identity.identity_features(net.module, net.variables, crop[None])[0][0])
    judge.append(identity.judge_embedding(img, lm))
  assert float(gmath.cosine(embs[0], embs[1])) > float(gmath.cosine(embs[0], embs[2])) + 0.2
  dj = lambda u, v: float(np.linalg.norm(u - v))  # noqa: E731
  assert dj(judge[0], judge[1]) < 0.6 < dj(judge[0], judge[2])  # dlib's documented threshold
