"""Converters from PyTorch state dicts and ONNX graphs to Flax variables of the identity nets.

* :func:`arcface_from_state_dict`: an insightface ``iresnet.py`` state dict
  (``backbone.pth``; a ``module.`` prefix from DataParallel is stripped).
* :func:`arcface_from_onnx`: an ONNX export of the same network, with or without
  BatchNorm folded into the convolutions (a folded BN becomes an identity BN
  carrying the conv bias, which is exact).
* :func:`sface_from_onnx`: OpenCV Zoo's int8 block-quantised SFace graph.

Conventions: PyTorch/ONNX conv weights are OIHW, Flax's HWIO; Linear weights
(out, in) become Dense kernels (in, out); BN's weight/bias/running_mean/
running_var become scale/bias (params) and mean/var (batch_stats).
"""

from __future__ import annotations

import re
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ganfit_jax.nets.iresnet import LAYERS
from ganfit_jax.files import atomic_path

Array = np.ndarray


def _conv(w: Array) -> Dict[str, Array]:
  return {"kernel": np.transpose(np.asarray(w, np.float32), (2, 3, 1, 0))}


def _bn(weight, bias, mean, var) -> Tuple[Dict[str, Array], Dict[str, Array]]:
  f = lambda a: np.asarray(a, np.float32).reshape(-1)  # noqa: E731
  return {"scale": f(weight), "bias": f(bias)}, {"mean": f(mean), "var": f(var)}


def _identity_bn(bias: Array, eps: float):
  """A BN that adds ``bias`` and is otherwise exactly the identity (var + eps == 1)."""
  n = bias.shape[0]
  return _bn(np.ones(n), bias, np.zeros(n), np.full(n, 1.0 - eps))


def _prelu(w: Array) -> Dict[str, Array]:
  return {"negative_slope": np.asarray(w, np.float32).reshape(-1)}


def _dense(w: Array, b: Array) -> Dict[str, Array]:
  return {"kernel": np.asarray(w, np.float32).T.copy(), "bias": np.asarray(b, np.float32)}


def _tree(items: List[Tuple[str, str, Dict[str, Array]]]):
  """[(collection, module name, leaves)] -> {'params': {...}, 'batch_stats': {...}}."""
  out: Dict[str, Dict] = {"params": {}, "batch_stats": {}}
  for coll, name, leaves in items:
    node = out[coll]
    *parents, last = name.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[last] = leaves
  return out


# --------------------------------------------------------------------------- #
# IResNet.

def iresnet_layers_from_keys(keys) -> Tuple[int, ...]:
  counts = [0, 0, 0, 0]
  for k in keys:
    m = re.match(r"layer([1-4])\.(\d+)\.", k)
    if m:
      counts[int(m.group(1)) - 1] = max(counts[int(m.group(1)) - 1], int(m.group(2)) + 1)
  if min(counts) == 0:
    raise ValueError("not an insightface IResNet state dict (no layer1..layer4 blocks found)")
  return tuple(counts)


def arch_name(layers: Sequence[int]) -> str:
  for name, l in LAYERS.items():
    if tuple(l) == tuple(layers):
      return name
  return ""


def _module_sequence(layers: Sequence[int]) -> List[Tuple[str, str]]:
  """(kind, Flax module path) in forward order; kinds: conv, bn, prelu, fc."""
  seq = [("conv", "conv1"), ("bn", "bn1"), ("prelu", "prelu")]
  for s, n in enumerate(layers):
    for b in range(n):
      p = f"layer{s + 1}_{b}/"
      seq += [("bn", p + "bn1"), ("conv", p + "conv1"), ("bn", p + "bn2"), ("prelu", p + "prelu"),
              ("conv", p + "conv2"), ("bn", p + "bn3")]
      if b == 0:
        seq += [("conv", p + "downsample_conv"), ("bn", p + "downsample_bn")]
  return seq + [("bn", "bn2"), ("fc", "fc"), ("bn", "features")]


def _torch_name(flax_path: str) -> str:
  m = re.match(r"layer(\d)_(\d+)/(.*)", flax_path)
  if not m:
    return flax_path
  rest = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}.get(m.group(3), m.group(3))
  return f"layer{m.group(1)}.{m.group(2)}.{rest}"


def arcface_from_state_dict(state_dict: Dict[str, Array]) -> Tuple[str, Tuple[int, ...], dict]:
  """Converts an insightface IResNet state dict; returns (arch name or '', layers, variables)."""
  sd = {re.sub(r"^(module\.|backbone\.)", "", k): np.asarray(v) for k, v in state_dict.items()}
  layers = iresnet_layers_from_keys(sd)
  used = set()

  def get(key):
    if key not in sd:
      raise ValueError(f"state dict has no {key!r}: not an insightface IResNet checkpoint")
    used.add(key)
    return sd[key]

  items = []
  for kind, path in _module_sequence(layers):
    t = _torch_name(path)
    if kind == "conv":
      items.append(("params", path, _conv(get(t + ".weight"))))
    elif kind == "bn":
      p, s = _bn(get(t + ".weight"), get(t + ".bias"), get(t + ".running_mean"), get(t + ".running_var"))
      used.add(t + ".num_batches_tracked")
      items += [("params", path, p), ("batch_stats", path, s)]
    elif kind == "prelu":
      items.append(("params", path, _prelu(get(t + ".weight"))))
    else:
      items.append(("params", path, _dense(get(t + ".weight"), get(t + ".bias"))))
  extra = sorted(k for k in sd if k not in used and not k.endswith("num_batches_tracked"))
  if extra:
    raise ValueError(f"state dict has {len(extra)} unexpected entries (e.g. {extra[:3]}); "
                     "is it an IResNet backbone (not a full training checkpoint with a margin head)?")
  return arch_name(layers), layers, _tree(items)


def _onnx_arrays(path: str):
  import onnx
  from onnx import numpy_helper
  model = onnx.load(path)
  g = model.graph
  arrays = {i.name: numpy_helper.to_array(i) for i in g.initializer}
  for n in g.node:  # Constant nodes carry weights in some exports
    if n.op_type == "Constant":
      for a in n.attribute:
        if a.name == "value":
          arrays[n.output[0]] = numpy_helper.to_array(a.t)
  return g, arrays


def _attr(node, name, default=None):
  import onnx
  for a in node.attribute:
    if a.name == name:
      return onnx.helper.get_attribute_value(a)
  return default


def arcface_from_onnx(path: str) -> Tuple[str, Tuple[int, ...], dict]:
  """Converts an ONNX export of insightface's IResNet (BN folded or not) by walking the graph.

  The Conv/BatchNormalization/PRelu/Gemm nodes are matched in forward order to
  the Flax module sequence; the number of blocks per stage is read from the
  graph's Add nodes and stride-2 convs.
  """
  g, arrays = _onnx_arrays(path)
  nodes = [n for n in g.node if n.op_type in ("Conv", "BatchNormalization", "PRelu", "Gemm", "MatMul")]
  # Blocks per stage: each block ends in an Add; a stage starts at a stride-2 3x3 conv.
  adds = [i for i, n in enumerate(g.node) if n.op_type == "Add"]
  stride2 = [i for i, n in enumerate(g.node)
             if n.op_type == "Conv" and tuple(_attr(n, "strides", (1, 1))) == (2, 2)
             and tuple(_attr(n, "kernel_shape", (1, 1))) == (3, 3)]
  if len(stride2) != 4:
    raise ValueError(f"{path}: expected 4 stride-2 3x3 convs (IResNet stages), found {len(stride2)}")
  bounds = stride2 + [len(g.node)]
  layers = tuple(sum(bounds[s] <= a < bounds[s + 1] for a in adds) for s in range(4))
  seq = _module_sequence(layers)

  def w(name):
    if name not in arrays:
      raise ValueError(f"{path}: tensor {name!r} is not an initializer; unsupported graph")
    return arrays[name]

  items, i, k = [], 0, 0
  while k < len(seq):
    kind, mpath = seq[k]
    if i >= len(nodes):
      raise ValueError(f"{path}: graph ended before {mpath}")
    n = nodes[i]
    if kind == "conv":
      if n.op_type != "Conv":
        raise ValueError(f"{path}: expected Conv for {mpath}, found {n.op_type} ({n.name})")
      items.append(("params", mpath, _conv(w(n.input[1]))))
      nxt_is_bn = (i + 1 < len(nodes) and nodes[i + 1].op_type == "BatchNormalization"
                   and nodes[i + 1].input[0] == n.output[0])
      if len(n.input) > 2 and not nxt_is_bn:  # BN folded into this conv
        k += 1
        bkind, bpath = seq[k]
        assert bkind == "bn"
        p, s = _identity_bn(np.asarray(w(n.input[2]), np.float32), 1e-5)
        items += [("params", bpath, p), ("batch_stats", bpath, s)]
    elif kind == "bn":
      if n.op_type != "BatchNormalization":
        raise ValueError(f"{path}: expected BatchNormalization for {mpath}, found {n.op_type}")
      p, s = _bn(*(w(x) for x in n.input[1:5]))
      items += [("params", mpath, p), ("batch_stats", mpath, s)]
    elif kind == "prelu":
      if n.op_type != "PRelu":
        raise ValueError(f"{path}: expected PRelu for {mpath}, found {n.op_type}")
      items.append(("params", mpath, _prelu(w(n.input[1]))))
    else:
      if n.op_type != "Gemm":
        raise ValueError(f"{path}: expected Gemm for {mpath}, found {n.op_type}")
      wt = w(n.input[1])
      wt = wt if _attr(n, "transB", 0) else wt.T
      items.append(("params", mpath, _dense(wt, w(n.input[2]))))
    i += 1
    k += 1
  return arch_name(layers), layers, _tree(items)


# --------------------------------------------------------------------------- #
# SFace.

def dequantize_blocked(q: Array, scale: Array, zero_point: Array, axis: int, block_size: int) -> Array:
  """ONNX ``DequantizeLinear`` with blocked quantisation: ``(q - zp) * scale[i // block]`` along ``axis``."""
  q = q.astype(np.float32)
  scale = np.asarray(scale, np.float32)
  zp = np.zeros_like(scale) if zero_point is None else np.asarray(zero_point, np.float32)
  if scale.size == 1:
    return (q - zp.reshape(())) * scale.reshape(())
  if block_size == 0:  # per-axis
    shape = [1] * q.ndim
    shape[axis] = -1
    return (q - zp.reshape(shape)) * scale.reshape(shape)
  idx = np.arange(q.shape[axis]) // block_size
  s = np.take(scale, idx, axis=axis)
  z = np.take(zp, idx, axis=axis)
  return (q - z) * s


def onnx_weights(path: str):
  """(weights, graph): all float weights of an ONNX graph, int8 blocks dequantised, Reshapes applied."""
  g, arrays = _onnx_arrays(path)
  out = dict(arrays)
  for n in g.node:
    if n.op_type == "DequantizeLinear":
      zp = out.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
      out[n.output[0]] = dequantize_blocked(out[n.input[0]], out[n.input[1]], zp,
                                            int(_attr(n, "axis", 1)), int(_attr(n, "block_size", 0)))
    elif n.op_type == "Reshape" and n.input[0] in out and n.input[1] in out:
      out[n.output[0]] = out[n.input[0]].reshape(out[n.input[1]].astype(np.int64))
  return out, g


def sface_from_onnx(path: str) -> dict:
  """Flax variables of :class:`ganfit_jax.nets.sface.SFace` from the OpenCV Zoo ONNX file."""
  from ganfit_jax.nets.sface import SPEC
  weights, g = onnx_weights(path)
  by_out = {n.output[0]: n for n in g.node}
  sub = [n for n in g.node if n.op_type == "Sub"]
  mul = [n for n in g.node if n.op_type == "Mul"]
  if not sub or not mul or not np.allclose(weights[sub[0].input[1]], 127.5) \
     or not np.allclose(weights[mul[0].input[1]], 0.0078125):
    raise ValueError(f"{path}: input normalisation is not (x - 127.5) * 0.0078125; not the expected SFace graph")
  items = []

  def bn(prefix, mpath):
    p, s = _bn(*(weights[f"{prefix}_{k}"] for k in ("gamma", "beta", "moving_mean", "moving_var")))
    items.extend([("params", mpath, p), ("batch_stats", mpath, s)])

  for name, _, _, _, _ in SPEC:
    conv_node = by_out[f"{name}_conv2d"]
    items.append(("params", f"{name}_conv2d", _conv(weights[conv_node.input[1]])))
    bn(f"{name}_batchnorm", f"{name}_batchnorm")
    items.append(("params", f"{name}_relu", _prelu(weights[f"{name}_relu_gamma"])))
  bn("bn1", "bn1")
  gemm = by_out["pre_fc1"]
  items.append(("params", "pre_fc1", _dense(weights[gemm.input[1]], weights[gemm.input[2]])))
  bn("fc1", "fc1")
  return _tree(items)


def load_torch_state_dict(path: str) -> Dict[str, Array]:
  """A PyTorch state dict (``torch.save(model.state_dict())``) as numpy arrays; needs torch."""
  import torch
  obj = torch.load(path, map_location="cpu", weights_only=True)
  if isinstance(obj, dict) and "state_dict" in obj:
    obj = obj["state_dict"]
  if not isinstance(obj, dict):
    raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict; save model.state_dict()")
  return {k: v.detach().cpu().numpy() for k, v in obj.items()}


def convert_arcface_file(src: str, out: str) -> str:
  """Converts an IResNet ``.pth`` or ``.onnx`` into a Flax ``.npz`` at ``out``; returns the arch name."""
  from ganfit_jax.nets import identity
  if src.endswith(".onnx"):
    arch, layers, variables = arcface_from_onnx(src)
  else:
    arch, layers, variables = arcface_from_state_dict(load_torch_state_dict(src))
  if not arch:
    raise ValueError(f"block counts {layers} match no known IResNet (r18/r34/r50/r100)")
  with atomic_path(out) as tmp:
    identity.save_variables(tmp, variables, "arcface", arch)
  return arch
