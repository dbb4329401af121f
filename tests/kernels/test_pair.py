"""conv2d_bias_relu_pair (two spatial convs in one grouped launch) against float64 PyTorch references.

Both outputs are channel slices of one NaN-poisoned buffer, as the block's p2 and p3 slices are: each slice must
be fully written and correct, everything else must stay NaN.
"""
import pytest
import torch

from fastinception.kernels.checked import conv2d_bias_relu_pair

from helpers import (
    BF16_SKIP,
    CL,
    DEVICE,
    GPU_ONLY,
    GPU_TILE_CONFIGS,
    NCHW,
    TF32_REL_TOL,
    assert_close,
    assert_untouched,
    conv_ref,
    make_input,
    make_weight,
    poisoned,
    randn,
    record_launches,
    seeded_cases,
)

_CHANNELS = [1, 3, 17, 33, 8, 20, 40]
_KS = (1, 3, 5, 7)


def _pair_cases(count, dtypes, seed):
    # i % 4 and (i + i // 4) % 4 walk all 16 (k_a, k_b) pairs in 16 cases
    return seeded_cases(count, dtypes, seed, lambda rng, i: dict(
        N=rng.randint(1, 3),
        H=rng.randint(1, 12),
        W=rng.randint(1, 12),
        a=_problem(rng, _KS[i % 4]),
        b=_problem(rng, _KS[(i + i // 4) % 4]),
        x_slice=i % 3 == 0,
        w_cl=i % 5 == 1,
        b_first=i % 2 == 1,
        b_format=(NCHW, CL)[(i // 4) % 2],
    ))


def _problem(rng, k):
    # the interpreter runs k*k taps per channel block: the widest kernels get small channel counts
    cap = 17 if k == 7 else 40
    return dict(k=k, Cin=min(rng.choice(_CHANNELS), cap), Cout=min(rng.choice(_CHANNELS), cap))


def _pair_id(c):
    fmt = lambda f: "cl" if f is CL else "nchw"  # noqa: E731
    a, b = c["a"], c["b"]
    return (f"{str(c['dtype'])[6:]}-N{c['N']}-{c['H']}x{c['W']}-a{a['Cin']}to{a['Cout']}k{a['k']}"
            f"-b{b['Cin']}to{b['Cout']}k{b['k']}-xa{fmt(c['x_format'])}-xb{fmt(c['b_format'])}"
            f"{'slice' if c['x_slice'] else ''}-o{fmt(c['out_format'])}{'-bfirst' if c['b_first'] else ''}")


PAIR_CASES = _pair_cases(16, (torch.float32, torch.float16), seed=5)


def make_pair(c):
    """Inputs of both problems and their outputs: slices of one poisoned buffer with a gap between them (b's slice
    first when b_first). Returns (a's tensors, b's tensors, the buffer, a mask of the written channels)."""
    gen = torch.Generator().manual_seed(c["seed"])
    dtype, N, H, W = c["dtype"], c["N"], c["H"], c["W"]
    problems = []
    for p, x_format in ((c["a"], c["x_format"]), (c["b"], c["b_format"])):
        x = make_input((N, p["Cin"], H, W), x_format, dtype, DEVICE, gen=gen, channel_slice=c["x_slice"])
        w = make_weight(gen, (p["Cout"], p["Cin"], p["k"], p["k"]), dtype, c["w_cl"])
        problems.append([x, w, randn(gen, (p["Cout"],), dtype)])
    first, second = (c["b"], c["a"]) if c["b_first"] else (c["a"], c["b"])
    lead, gap = 1, 3
    start2 = lead + first["Cout"] + gap
    big = poisoned((N, start2 + second["Cout"] + 2, H, W), dtype, c["out_format"])
    slices = [slice(lead, lead + first["Cout"]), slice(start2, start2 + second["Cout"])]
    if c["b_first"]:
        slices.reverse()
    keep = torch.zeros(big.shape[1], dtype=torch.bool)
    for p, s in zip(problems, slices):
        p.append(big[:, s])
        keep[s] = True
    return problems[0], problems[1], big, keep


def run_pair_case(c, allow_tf32=False, config=None, tol=None, launches=1):
    (xa, wa, ba, oa), (xb, wb, bb, ob), big, keep = make_pair(c)
    if config is None and torch.cuda.is_available():
        # autotuning launches every config on the first call: count a tuned call, on outputs poisoned again
        conv2d_bias_relu_pair(xa, wa, ba, oa, xb, wb, bb, ob, allow_tf32=allow_tf32)
        oa.fill_(float("nan"))
        ob.fill_(float("nan"))
    with record_launches() as log:
        ret = conv2d_bias_relu_pair(xa, wa, ba, oa, xb, wb, bb, ob, allow_tf32=allow_tf32, config=config)
    assert ret is None
    assert log.launches == launches
    assert_untouched(big, keep)
    for name, (x, w, b, o) in (("a", (xa, wa, ba, oa)), ("b", (xb, wb, bb, ob))):
        if o.numel():  # F.conv2d rejects empty problems
            assert_close(o, conv_ref(x, w, b), c["dtype"], f"pair {name} {_pair_id(c)}", tol=tol)


def _case(**kw):
    base = dict(N=2, H=5, W=6, a=dict(k=3, Cin=20, Cout=17), b=dict(k=5, Cin=8, Cout=9), dtype=torch.float32,
                x_format=CL, b_format=NCHW, out_format=CL, x_slice=False, w_cl=False, b_first=False, seed=7)
    return {**base, **kw}


# ---------------------------------------------------------------------------------------------
# results (every case also checks that it was one launch)


@pytest.mark.parametrize("case", PAIR_CASES, ids=_pair_id)
def test_pair(case):
    run_pair_case(case)


@BF16_SKIP
@pytest.mark.parametrize("case", _pair_cases(4, (torch.bfloat16,), seed=6), ids=_pair_id)
def test_pair_bf16(case):
    run_pair_case(case)


def test_pair_fp64():
    # fp64 takes the tl.sum path (no tl.dot) in both halves
    run_pair_case(_case(dtype=torch.float64, a=dict(k=1, Cin=5, Cout=3), b=dict(k=3, Cin=4, Cout=6)))


def test_pair_googlenet_channels():
    # block 3a's spatial convs: 96 -> 128 (3x3) on t2 and 16 -> 32 (5x5) on t3, on a tiny image
    run_pair_case(_case(N=1, H=4, W=3, a=dict(k=3, Cin=96, Cout=128), b=dict(k=5, Cin=16, Cout=32),
                        b_format=CL, seed=8))


def test_pair_forced_config():
    # a tile smaller than both problems: each half spans several pixel and channel blocks
    run_pair_case(_case(x_slice=True, b_first=True),
                  config={"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "num_warps": 4, "num_stages": 1})


@pytest.mark.parametrize("empty", ["a", "b"])
def test_pair_one_problem_empty(empty):
    # a problem with no output channels is skipped; the other still runs in one launch
    run_pair_case(_case(**{empty: dict(k=3, Cin=4, Cout=0)}))


@pytest.mark.parametrize("N,H,W", [(0, 4, 4), (2, 0, 3), (1, 3, 0)])
def test_pair_no_pixels_launches_nothing(N, H, W):
    run_pair_case(_case(N=N, H=H, W=W), launches=0)


# ---------------------------------------------------------------------------------------------
# errors


def _valid_pair():
    (xa, wa, ba, oa), (xb, wb, bb, ob), _, _ = make_pair(_case())
    return [xa, wa, ba, oa, xb, wb, bb, ob]


def _set(args, **changes):
    # args with entries replaced by name, each by a function of the valid tensor
    names = ["x_a", "w_a", "b_a", "out_a", "x_b", "w_b", "b_b", "out_b"]
    for name, change in changes.items():
        args[names.index(name)] = change(args[names.index(name)])
    return args


@pytest.mark.parametrize("changes,error,match", [
    (dict(x_b=lambda t: t[:, :, :4], out_b=lambda t: t[:, :, :4]), ValueError,
     r"x_a and x_b must have the same N, H, W, got \(2, 20, 5, 6\) and \(2, 8, 4, 6\)"),
    (dict(x_b=lambda t: t[:1], out_b=lambda t: t[:1]), ValueError, "same N, H, W"),
    (dict(w_b=lambda t: t.double()), ValueError, "same dtype"),
    (dict(w_b=lambda t: t[:, :, :4, :4]), ValueError, r"w_b must have an odd square kernel .* got 4x4"),
    (dict(w_a=lambda t: t[:, :, :, :1]), ValueError, r"w_a must have an odd square kernel .* got 3x1"),
    (dict(w_a=lambda t: t[:, :7]), ValueError, "w_a has 7 input channels, x_a has 20"),
    (dict(b_a=lambda t: t[:5]), ValueError, r"b_a must have shape \(17,\), got \(5,\)"),
    (dict(out_b=lambda t: t[:, :4]), ValueError, r"out_b must have shape \(2, 9, 5, 6\), got \(2, 4, 5, 6\)"),
    (dict(x_a=lambda t: t[0]), ValueError, "x_a must be 4-D"),
    (dict(b_b=lambda t: t.tolist()), TypeError, "b_b must be a torch.Tensor"),
], ids=["hw", "n", "dtype", "k-even", "k-nonsquare", "cin", "bias", "out", "3d", "list"])
def test_pair_bad_inputs(changes, error, match):
    args = _set(_valid_pair(), **changes)
    with pytest.raises(error, match=match):
        conv2d_bias_relu_pair(*args)


def test_pair_bad_dtype_and_config():
    args = _valid_pair()
    with pytest.raises(ValueError, match="dtype must be one of"):
        conv2d_bias_relu_pair(*[t.int() for t in args])
    with pytest.raises(ValueError, match="unknown config keys"):
        conv2d_bias_relu_pair(*args, config={"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "warps": 4})


def test_pair_cpu_tensors_need_interpreter(monkeypatch):
    args = [t.cpu() for t in _valid_pair()]
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        conv2d_bias_relu_pair(*args)


@GPU_ONLY
def test_pair_device_mismatch():
    args = _set(_valid_pair(), x_b=lambda t: t.cpu())
    with pytest.raises(ValueError, match="same device"):
        conv2d_bias_relu_pair(*args)


# ---------------------------------------------------------------------------------------------
# GPU only: compiled tiles


@GPU_ONLY
@pytest.mark.parametrize("config", GPU_TILE_CONFIGS, ids=lambda c: f"{c['BLOCK_M']}x{c['BLOCK_N']}x{c['BLOCK_K']}w8")
@pytest.mark.parametrize("ks", [(3, 5), (5, 3), (7, 1)], ids=lambda ks: f"k{ks[0]}k{ks[1]}")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_pair_num_warps_8(ks, config, dtype):
    case = _case(N=3, H=14, W=13, a=dict(k=ks[0], Cin=48, Cout=40), b=dict(k=ks[1], Cin=16, Cout=24), dtype=dtype,
                 x_slice=True, seed=ks[0])
    run_pair_case(case, config=config)


@GPU_ONLY
def test_pair_tf32():
    case = _case(N=2, H=12, W=12, a=dict(k=3, Cin=96, Cout=128), b=dict(k=5, Cin=16, Cout=32), b_format=CL, seed=9)
    run_pair_case(case, allow_tf32=True, tol=TF32_REL_TOL)


@GPU_ONLY
def test_pair_googlenet_autotuned():
    # block 3a at 28x28, batch 8, autotuned (config=None)
    case = _case(N=8, H=28, W=28, a=dict(k=3, Cin=96, Cout=128), b=dict(k=5, Cin=16, Cout=32), dtype=torch.float16,
                 b_format=CL, seed=10)
    run_pair_case(case)



def test_pair_outputs_and_masks_with_layouts_of_their_own():
    # the two outputs as separate tensors in different layouts (and their masks in others): a kernel that wrote one
    # half with the other half's strides would pass when both are slices of one buffer
    (xa, wa, ba, _), (xb, wb, bb, _), _, _ = make_pair(_case())
    out_a = poisoned((2, 17 + 4, 5, 6), torch.float32, NCHW)[:, 4:]
    out_b = poisoned((2, 9, 5, 6), torch.float32, CL)
    mask_a = torch.full((2, 17, 5, 6), 7, dtype=torch.uint8, device=DEVICE).contiguous(memory_format=CL)
    mask_b = torch.full((2, 9 + 1, 5, 6), 7, dtype=torch.uint8, device=DEVICE)[:, 1:]
    conv2d_bias_relu_pair(xa, wa, ba, out_a, xb, wb, bb, out_b, mask_a=mask_a, mask_b=mask_b)
    for name, x, w, b, o, m in (("a", xa, wa, ba, out_a, mask_a), ("b", xb, wb, bb, out_b, mask_b)):
        assert_close(o, conv_ref(x, w, b), torch.float32, f"pair {name} in a layout of its own")
        assert torch.equal(m.bool(), o > 0), f"mask_{name} is not the ReLU mask of out_{name}"
