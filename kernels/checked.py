"""The kernels' checked entry points: each validates its arguments once (types, shapes, dtypes, devices, a forced
config, and that the kernels can run on that device), then calls the unchecked launcher of its kernel module
(``launch_<name>``), which holds the semantics and documents them.

The triton backend's ops (``fastinception/ops/triton_ops.py``) call the unchecked launchers directly: the block
layer validates its input, output and parameters once per call and checks ``require_launchable``, so the hot path
does not validate the same tensors again launch after launch.
"""
import torch

from .common import SUPPORTED_DTYPES, bf16_on_interpreter, require_launchable
from .conv2d_backward import launch_conv2d_relu_input_grad, launch_conv2d_relu_weight_grad
from .conv2d_forward import launch_conv2d_bias_relu, launch_conv2d_bias_relu_pair
from .stem_backward import launch_stem_input_grad, launch_stem_weight_grad
from .stem_forward import launch_stem_forward

__all__ = [
    "conv2d_bias_relu", "conv2d_bias_relu_pair", "stem_forward", "conv2d_relu_input_grad", "conv2d_relu_weight_grad",
    "stem_input_grad", "stem_weight_grad", "require_launchable",
]

_BLOCK_KEYS = {"BLOCK_M", "BLOCK_N", "BLOCK_K"}
_CONFIG_KEYS = _BLOCK_KEYS | {"num_warps", "num_stages"}


# ---------------------------------------------------------------------------------------------
# argument checks

def check_shape(name, t, expected):
    if tuple(t.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(t.shape)}")


def check_same_dtype_and_device(tensors: dict):
    """Same dtype (a supported one) and same device for every tensor; launchable there."""
    dtypes = {name: t.dtype for name, t in tensors.items()}
    first = next(iter(dtypes.values()))
    if any(d != first for d in dtypes.values()):
        raise ValueError(f"all tensors must have the same dtype, got {dtypes}")
    if first not in SUPPORTED_DTYPES:
        raise ValueError(f"dtype must be one of {SUPPORTED_DTYPES}, got {first}")
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) != 1:
        raise ValueError(f"all tensors must be on the same device, got {devices}")
    require_launchable(*tensors.values())
    check_runs_here(first, next(iter(devices.values())))


def check_runs_here(dtype, device):
    """Refuse bf16 on Triton's CPU interpreter, which computes it wrongly (it has no bf16 arithmetic: relative
    errors around 1e10, silently). The block's ops run bf16 there in fp32 instead; the kernels alone refuse."""
    if bf16_on_interpreter(dtype, device):
        raise TypeError("bfloat16 kernels give wrong results under Triton's CPU interpreter; run them on a GPU, or "
                        "use float32/float16 here (FastInception's triton backend computes bf16 in fp32 there)")


def check_mask(name, mask, like):
    """A ReLU-mask output: None, or uint8 with ``like``'s shape on its device (any strides)."""
    if mask is not None:
        check_tensor(name, mask, like.shape, torch.uint8, like.device, dtypes=(torch.uint8,))


def check_tensor(name, t, shape, dtype=None, device=None, dtypes=SUPPORTED_DTYPES):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")
    if t.dtype not in dtypes:
        raise TypeError(f"{name}: expected a dtype in {[str(d) for d in dtypes]}, got {t.dtype}")
    if dtype is not None and t.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {t.dtype}")
    if device is not None and t.device != device:
        raise ValueError(f"{name}: expected device {device}, got {t.device}")


def check_4d(name, t):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 4:
        raise ValueError(f"{name}: expected a 4-d (N, C, H, W) tensor, got shape {tuple(t.shape)}")
    if t.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name}: expected a dtype in {[str(d) for d in SUPPORTED_DTYPES]}, got {t.dtype}")


def check_config(config, extra=()):
    """A forced config: a dict of BLOCK_M, BLOCK_N, BLOCK_K and optionally num_warps, num_stages and the kernel's
    ``extra`` meta-parameters (None: tuned)."""
    if config is None:
        return
    missing = _BLOCK_KEYS - set(config)
    if missing:
        raise ValueError(f"config must give BLOCK_M, BLOCK_N and BLOCK_K, missing {sorted(missing)}")
    unknown = set(config) - _CONFIG_KEYS - set(extra)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}")


def _check_conv(x, weight, bias, out, names=("x", "weight", "bias", "out")):
    """Shapes of one conv problem, its tensors called ``names`` in errors; returns (N, C_IN, H, W, C_OUT, k)."""
    xn, wn, bn, on = names
    for name, t in ((xn, x), (wn, weight), (bn, bias), (on, out)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{xn} must be 4-D (N, Cin, H, W), got shape {tuple(x.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"{wn} must be 4-D (Cout, Cin, k, k), got shape {tuple(weight.shape)}")
    N, C_IN, H, W = x.shape
    C_OUT, w_cin, kh, kw = weight.shape
    if w_cin != C_IN:
        raise ValueError(f"{wn} has {w_cin} input channels, {xn} has {C_IN}")
    if kh != kw or kh % 2 != 1:
        raise ValueError(f"{wn} must have an odd square kernel (1, 3, 5, ...), got {kh}x{kw}")
    check_shape(bn, bias, (C_OUT,))
    check_shape(on, out, (N, C_OUT, H, W))
    return N, C_IN, H, W, C_OUT, kh


def _check_1x1(name, w, c_in):
    if w.dim() != 4 or w.shape[1] != c_in or w.shape[2] != 1 or w.shape[3] != 1:
        raise ValueError(f"{name} must have shape (C, {c_in}, 1, 1), got {tuple(w.shape)}")
    return w.shape[0]


def check_saved_output(name, y, shape, dtype, device):
    """What a ReLU backward reads: the saved output (the gradient's dtype) or its uint8 mask."""
    check_tensor(name, y, shape, None, device, dtypes=(dtype, torch.uint8))


def _check_stem_grads(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4):
    """The stem backward's activations and gradients; returns (n, c_in, h, w, c1, c2a, c3a, c4)."""
    check_4d("x", x)
    n, c_in, h, w = x.shape
    dtype, device = x.dtype, x.device
    chans = []
    for name, g in (("grad_out1", grad_out1), ("grad_t2", grad_t2), ("grad_t3", grad_t3), ("grad_out4", grad_out4)):
        check_4d(name, g)
        check_tensor(name, g, (n, g.shape[1], h, w), dtype, device)
        chans.append(g.shape[1])
    c1, c2a, c3a, c4 = chans
    check_saved_output("out1", out1, (n, c1, h, w), dtype, device)
    check_saved_output("out4", out4, (n, c4, h, w), dtype, device)
    check_runs_here(dtype, device)
    return n, c_in, h, w, c1, c2a, c3a, c4


# ---------------------------------------------------------------------------------------------
# forward

def conv2d_bias_relu(x, weight, bias, out, *, mask=None, allow_tf32=False, config=None) -> torch.Tensor:
    """Checked ``launch_conv2d_bias_relu``: out <- relu(conv2d(x, weight, bias, stride=1, padding=k//2)).

    x: (N, Cin, H, W); weight: (Cout, Cin, k, k) with k odd; bias: (Cout,); out: (N, Cout, H, W); one supported
    dtype and one device for all. ``mask``: None, or uint8 like out, for the ReLU's backward mask. ``config``: None
    or {"BLOCK_M", "BLOCK_N", "BLOCK_K", "num_warps", "num_stages"}. Returns out.
    """
    _check_conv(x, weight, bias, out)
    check_same_dtype_and_device({"x": x, "weight": weight, "bias": bias, "out": out})
    check_mask("mask", mask, out)
    check_config(config, extra=("FLAT",))  # FLAT: the K loop's form (conv2d_forward)
    return launch_conv2d_bias_relu(x, weight, bias, out, mask=mask, allow_tf32=allow_tf32, config=config)


def conv2d_bias_relu_pair(x_a, w_a, b_a, out_a, x_b, w_b, b_b, out_b, *, mask_a=None, mask_b=None,
                          allow_tf32=False, config=None) -> None:
    """Checked ``launch_conv2d_bias_relu_pair``: both convs in one grouped launch.

    Each problem as in ``conv2d_bias_relu``; both have the same N, H, W, dtype and device.
    """
    N, _, H, W, _, _ = _check_conv(x_a, w_a, b_a, out_a, ("x_a", "w_a", "b_a", "out_a"))
    shape_b = _check_conv(x_b, w_b, b_b, out_b, ("x_b", "w_b", "b_b", "out_b"))
    if (shape_b[0], shape_b[2], shape_b[3]) != (N, H, W):
        raise ValueError(f"x_a and x_b must have the same N, H, W, got {tuple(x_a.shape)} and {tuple(x_b.shape)}")
    check_same_dtype_and_device({"x_a": x_a, "w_a": w_a, "b_a": b_a, "out_a": out_a,
                                 "x_b": x_b, "w_b": w_b, "b_b": b_b, "out_b": out_b})
    check_mask("mask_a", mask_a, out_a)
    check_mask("mask_b", mask_b, out_b)
    check_config(config, extra=("FLAT",))  # FLAT: the K loop's form (conv2d_forward)
    launch_conv2d_bias_relu_pair(x_a, w_a, b_a, out_a, x_b, w_b, b_b, out_b, mask_a=mask_a, mask_b=mask_b,
                                 allow_tf32=allow_tf32, config=config)


def stem_forward(x, w1, b1, w2a, b2a, w3a, b3a, w4, b4, out1, t2, t3, out4, *, mask1=None, mask4=None,
                 allow_tf32=False, config=None) -> None:
    """Checked ``launch_stem_forward``: the four 1x1 branches of an Inception block that read x, in one launch.

    x: (N, Cin, H, W); w*: (c, Cin, 1, 1); b*: (c,); outputs (N, c, H, W); one supported dtype and one device.
    ``mask1`` / ``mask4``: None, or uint8 like out1 / out4, for their ReLU masks.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be 4-D (N, Cin, H, W), got shape {tuple(x.shape)}")
    N, c_in, H, W = x.shape
    c1 = _check_1x1("w1", w1, c_in)
    c2 = _check_1x1("w2a", w2a, c_in)
    c3 = _check_1x1("w3a", w3a, c_in)
    c4 = _check_1x1("w4", w4, c_in)
    for name, b, c in (("b1", b1, c1), ("b2a", b2a, c2), ("b3a", b3a, c3), ("b4", b4, c4)):
        check_shape(name, b, (c,))
    for name, o, c in (("out1", out1, c1), ("t2", t2, c2), ("t3", t3, c3), ("out4", out4, c4)):
        check_shape(name, o, (N, c, H, W))
    check_same_dtype_and_device({
        "x": x, "w1": w1, "b1": b1, "w2a": w2a, "b2a": b2a, "w3a": w3a, "b3a": b3a, "w4": w4, "b4": b4,
        "out1": out1, "t2": t2, "t3": t3, "out4": out4,
    })
    check_mask("mask1", mask1, out1)
    check_mask("mask4", mask4, out4)
    check_config(config)
    launch_stem_forward(x, w1, b1, w2a, b2a, w3a, b3a, w4, b4, out1, t2, t3, out4, mask1=mask1, mask4=mask4,
                        allow_tf32=allow_tf32, config=config)


# ---------------------------------------------------------------------------------------------
# backward

def conv2d_relu_input_grad(grad_y, y, weight, t, grad_t, *, allow_tf32=False, config=None) -> torch.Tensor:
    """Checked ``launch_conv2d_relu_input_grad``: grad_t <- conv2d_input_grad(grad_y * (y > 0), weight) * (t > 0).

    grad_y, y: (N, Cout, H, W) (y the saved output, or its uint8 ReLU mask); weight: (Cout, Cin, k, k), k odd;
    t, grad_t: (N, Cin, H, W); one dtype and device. Returns grad_t.
    """
    check_4d("grad_y", grad_y)
    n, c_out, h, w = grad_y.shape
    check_4d("weight", weight)
    if weight.shape[0] != c_out or weight.shape[2] != weight.shape[3] or weight.shape[2] % 2 != 1:
        raise ValueError(f"weight: expected shape ({c_out}, Cin, k, k) with k odd, got {tuple(weight.shape)}")
    c_in = weight.shape[1]
    dtype, device = grad_y.dtype, grad_y.device
    check_saved_output("y", y, (n, c_out, h, w), dtype, device)
    check_tensor("weight", weight, weight.shape, dtype, device)
    check_tensor("t", t, (n, c_in, h, w), dtype, device)
    check_tensor("grad_t", grad_t, (n, c_in, h, w), dtype, device)
    require_launchable(grad_y, y, weight, t, grad_t)
    check_runs_here(dtype, device)
    check_config(config)
    return launch_conv2d_relu_input_grad(grad_y, y, weight, t, grad_t, allow_tf32=allow_tf32, config=config)


def conv2d_relu_weight_grad(grad_y, y, t, grad_weight, grad_bias, *, deterministic=True, allow_tf32=False,
                            config=None) -> None:
    """Checked ``launch_conv2d_relu_weight_grad``: the weight and bias gradients (either may be None).

    grad_y, y: (N, Cout, H, W) (y the saved output, or its uint8 ReLU mask); t: (N, Cin, H, W) (one dtype and
    device). grad_weight: (Cout, Cin, k, k), k odd;
    grad_bias: (Cout,); on the same device, in any supported dtype (the parameter dtype).
    """
    if grad_weight is None and grad_bias is None:
        return None
    check_4d("grad_y", grad_y)
    n, c_out, h, w = grad_y.shape
    dtype, device = grad_y.dtype, grad_y.device
    check_saved_output("y", y, (n, c_out, h, w), dtype, device)
    check_4d("t", t)
    c_in = t.shape[1]
    check_tensor("t", t, (n, c_in, h, w), dtype, device)
    if grad_weight is not None:
        check_4d("grad_weight", grad_weight)
        k = grad_weight.shape[2]
        if k % 2 != 1:
            raise ValueError(f"grad_weight: expected an odd kernel size, got shape {tuple(grad_weight.shape)}")
        check_tensor("grad_weight", grad_weight, (c_out, c_in, k, k), None, device)
    if grad_bias is not None:
        check_tensor("grad_bias", grad_bias, (c_out,), None, device)
    require_launchable(grad_y, y, t, grad_weight, grad_bias)
    check_runs_here(dtype, device)
    check_config(config)
    launch_conv2d_relu_weight_grad(grad_y, y, t, grad_weight, grad_bias, deterministic=deterministic,
                                   allow_tf32=allow_tf32, config=config)


def stem_input_grad(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4, w1, w2a, w3a, w4, grad_x, *,
                    allow_tf32=False, config=None) -> torch.Tensor:
    """Checked ``launch_stem_input_grad``: grad_x of the stem (the three 1x1 convs on x and the pool branch).

    x, grad_x: (N, Cin, H, W); grad_out1/out1: (N, c1, H, W); grad_t2: (N, c2a, H, W); grad_t3: (N, c3a, H, W);
    grad_out4/out4: (N, c4, H, W); w1/w2a/w3a/w4: (c, Cin, 1, 1); one dtype and device. Returns grad_x.
    """
    n, c_in, h, w, c1, c2a, c3a, c4 = _check_stem_grads(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4)
    dtype, device = x.dtype, x.device
    for name, wt, c in (("w1", w1, c1), ("w2a", w2a, c2a), ("w3a", w3a, c3a), ("w4", w4, c4)):
        check_tensor(name, wt, (c, c_in, 1, 1), dtype, device)
    check_tensor("grad_x", grad_x, (n, c_in, h, w), dtype, device)
    require_launchable(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4, w1, w2a, w3a, w4, grad_x)
    check_config(config)
    return launch_stem_input_grad(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4, w1, w2a, w3a, w4, grad_x,
                                  allow_tf32=allow_tf32, config=config)


def stem_weight_grad(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4, gw1, gb1, gw2a, gb2a, gw3a, gb3a, gw4, gb4,
                     *, deterministic=True, allow_tf32=False, config=None) -> None:
    """Checked ``launch_stem_weight_grad``: the stem's eight weight and bias gradients (any may be None).

    Activations and gradients as in ``stem_input_grad``; weights (c, Cin, 1, 1), biases (c,), on the same device,
    in any supported dtype (the parameter dtype).
    """
    _, c_in, _, _, c1, c2a, c3a, c4 = _check_stem_grads(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4)
    device = x.device
    for name, gw, gb, c in (("gw1", gw1, gb1, c1), ("gw2a", gw2a, gb2a, c2a), ("gw3a", gw3a, gb3a, c3a),
                            ("gw4", gw4, gb4, c4)):
        if gw is not None:
            check_tensor(name, gw, (c, c_in, 1, 1), None, device)
        if gb is not None:
            check_tensor("gb" + name[2:], gb, (c,), None, device)
    require_launchable(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4, gw1, gb1, gw2a, gb2a, gw3a, gb3a, gw4,
                       gb4)
    check_config(config)
    launch_stem_weight_grad(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4, gw1, gb1, gw2a, gb2a, gw3a, gb3a,
                            gw4, gb4, deterministic=deterministic, allow_tf32=allow_tf32, config=config)
