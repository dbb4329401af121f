"""Launch plumbing of the kernels: bucketed autotune keys, config pruning, and keyword launches through Triton's
autotuner.

Under the interpreter the launchers bypass the autotuner (fixed small tiles), so the autotuned path is exercised here
with a stub benchmark that runs each candidate once: it proves that keyword launches, the prune, the config
pre_hook and the bucketed key work together in Triton's own Autotuner.
"""
import pytest
import torch
import triton

from fastinception.kernels import (
    conv2d_backward,
    conv2d_forward,
    conv2d_general,
    conv2d_general_backward,
    launch,
    stem_backward,
    stem_forward,
)

from helpers import CUDA, assert_close, conv_ref

AUTOTUNED = {
    "conv2d_bias_relu": conv2d_forward._conv2d_bias_relu_kernel,
    "conv2d_bias_relu_pair": conv2d_forward._conv2d_bias_relu_pair_kernel,
    "stem_forward": stem_forward._stem_forward_kernel,
    "conv_relu_dgrad": conv2d_backward._conv_relu_dgrad_kernel,
    "conv_relu_wgrad": conv2d_backward._conv_relu_wgrad_kernel,
    "stem_dgrad": stem_backward._stem_dgrad_kernel,
    "stem_wgrad": stem_backward._stem_wgrad_kernel,
    "conv2d_weight_grad": conv2d_general_backward._conv2d_weight_grad_kernel,
}
INTERPRETER_ONLY = pytest.mark.skipif(CUDA, reason="drives the autotuner with a stub benchmark under the interpreter")


# ---------------------------------------------------------------------------------------------
# bucketed keys

def test_pixel_bucket():
    assert [launch.pixel_bucket(p) for p in (1, 2, 3, 4, 5, 1000, 1024, 1025)] == [1, 2, 4, 4, 8, 1024, 1024, 2048]
    # batches 96 and 128 of a 28x28 block share a bucket; 64 does not
    assert launch.pixel_bucket(96 * 784) == launch.pixel_bucket(128 * 784) == 2**17
    assert launch.pixel_bucket(64 * 784) == 2**16


@pytest.mark.parametrize("name", AUTOTUNED)
def test_keys_hold_the_bucket_not_the_pixel_count(name):
    keys = AUTOTUNED[name].keys
    assert "P_BUCKET" in keys
    assert not {"P", "M", "PIX_PER_SPLIT"} & set(keys)


def _tuning_key(tuned, kwargs):
    # as triton's Autotuner.run builds it: the key arguments' values, then every tensor argument's dtype
    key = [kwargs[k] for k in tuned.keys]
    key += [str(v.dtype) for k, v in kwargs.items() if k in tuned.arg_names and hasattr(v, "dtype")]
    return tuple(key)


def _launch_all(n, h=28, w=28, dtype=torch.float16):
    """Every unchecked launcher on a batch of n images; returns what reached ``launch``: (kernel name, key)."""
    g = torch.Generator().manual_seed(n)

    def r(*shape):
        return torch.randn(shape, generator=g).to(dtype)

    c_in, c1, c2a, c3a, c4, c2b, c3b = 8, 4, 6, 2, 3, 5, 7
    x = r(n, c_in, h, w)
    w1, w2a, w3a, w4 = r(c1, c_in, 1, 1), r(c2a, c_in, 1, 1), r(c3a, c_in, 1, 1), r(c4, c_in, 1, 1)
    b1, b2a, b3a, b4 = r(c1), r(c2a), r(c3a), r(c4)
    out1, t2, t3, out4 = r(n, c1, h, w), r(n, c2a, h, w), r(n, c3a, h, w), r(n, c4, h, w)
    w2b, b2b, out2, w3b, b3b, out3 = r(c2b, c2a, 3, 3), r(c2b), r(n, c2b, h, w), r(c3b, c3a, 5, 5), r(c3b), \
        r(n, c3b, h, w)
    stem_forward.launch_stem_forward(x, w1, b1, w2a, b2a, w3a, b3a, w4, b4, out1, t2, t3, out4)
    conv2d_forward.launch_conv2d_bias_relu(t2, w2b, b2b, out2)
    conv2d_forward.launch_conv2d_bias_relu_pair(t2, w2b, b2b, out2, t3, w3b, b3b, out3)
    conv2d_backward.launch_conv2d_relu_input_grad(out2, out2, w2b, t2, torch.empty_like(t2))
    conv2d_backward.launch_conv2d_relu_weight_grad(out2, out2, t2, torch.empty_like(w2b), torch.empty_like(b2b))
    stem_backward.launch_stem_input_grad(x, out1, out1, t2, t3, out4, out4, w1, w2a, w3a, w4, torch.empty_like(x))
    stem_backward.launch_stem_weight_grad(x, out1, out1, t2, t3, out4, out4, *(torch.empty_like(t) for t in (
        w1, b1, w2a, b2a, w3a, b3a, w4, b4)))
    conv2d_general_backward.launch_conv2d_weight_grad(out2, out2, t2, torch.empty_like(w2b), torch.empty_like(b2b),
                                                      kernel=(3, 3), stride=(1, 1), padding=(1, 1), relu=True)


@pytest.fixture
def recorded(monkeypatch):
    """Launches go to a list instead of running: (autotuned kernel, its keyword arguments)."""
    calls = []
    for mod in (conv2d_forward, stem_forward, conv2d_backward, stem_backward, conv2d_general_backward):
        monkeypatch.setattr(mod, "launch", lambda tuned, grid, kwargs, *rest: calls.append((tuned, kwargs)))
    for mod in (conv2d_backward, stem_backward, conv2d_general_backward):
        monkeypatch.setattr(mod, "reduce_partials", lambda *args: None)
    return calls


def test_batch_sizes_in_one_bucket_share_every_key(recorded):
    keys = {}
    for n in (3, 4, 6):  # 2352 and 3136 pixels: bucket 4096; 4704: bucket 8192
        recorded.clear()
        _launch_all(n)
        keys[n] = [(tuned.base_fn.__name__, _tuning_key(tuned, kwargs)) for tuned, kwargs in recorded]
    names = {name for name, _ in keys[3]}
    assert names == {k.base_fn.__name__ for k in AUTOTUNED.values()}
    assert keys[3] == keys[4]
    assert all(a != b for a, b in zip(keys[4], keys[6]))


# ---------------------------------------------------------------------------------------------
# config pruning

def _prune_args(dtype, **sizes):
    t = torch.empty(1, dtype=dtype)  # a CPU tensor: the sm_90 limit is assumed
    channels_last_outputs = dict.fromkeys(("stride_out_c", "stride_outa_c", "stride_outb_c", "stride_out1_c",
                                           "stride_out4_c"), 1)
    return {"x_ptr": t, "xa_ptr": t, "gy_ptr": t, "PRECISION": "tf32", **channels_last_outputs, **sizes}


def _config(m, n, k, stages):
    return triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}, num_warps=4, num_stages=stages)


def test_prune_drops_what_cannot_fit_shared_memory():
    # the stem weight gradient's configs all fit an sm_90 device, fp64 included (fp16/fp32 keep the wgmma-sized
    # ones); a deeper pipeline does not
    kernel = stem_backward._stem_wgrad_kernel
    prune = kernel.early_config_prune
    sizes = dict(P_BUCKET=2**17, C_IN=192, C1=64, C2=96, C3=16, C4=32)
    wgmma_sized = [c for c in kernel.configs if c.kwargs["BLOCK_M"] >= 64]
    for dtype in (torch.float16, torch.float32):
        assert prune(kernel.configs, {}, **_prune_args(dtype, **sizes)) == wgmma_sized
    assert prune(kernel.configs, {}, **_prune_args(torch.float64, **sizes)) == kernel.configs
    deep = _config(64, 64, 32, 3)  # two buffers of 9 pool loads + the gradient tiles: 352 KB in fp64
    args = _prune_args(torch.float64, **sizes)
    assert prune.shared_memory(deep, args) > launch.SM90_SHARED_MEMORY
    assert prune([*kernel.configs, deep], {}, **args) == kernel.configs


def test_prune_keeps_wgmma_sized_tiles_for_16_bit_and_fp32_dots():
    # BLOCK_M < 64 would run Ampere's mma.sync on sm_90: dropped, unless no other config is left; fp64 keeps them
    kernel = conv2d_backward._conv_relu_dgrad_kernel
    prune = kernel.early_config_prune
    small, large = _config(32, 64, 64, 3), _config(64, 64, 32, 3)
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        args = _prune_args(dtype, P_BUCKET=2**17, C_IN=96, C_OUT=128)
        assert prune([small, large], {}, **args) == [large]
        assert prune([small], {}, **args) == [small]
    assert prune([small, large], {}, **_prune_args(torch.float64, P_BUCKET=2**17, C_IN=96, C_OUT=128)) == [small, large]
    # the stem forward's 128x128x32 tile with its nine pool loads: two stages fit in fp32, three only in fp16
    kernel = stem_forward._stem_forward_kernel
    two, three = _config(128, 128, 32, 2), _config(128, 128, 32, 3)
    sizes = dict(P_BUCKET=2**17, C_IN=192, C1=64, C2=96, C3=16, C4=32, USE_DOT=True)
    assert kernel.early_config_prune([two, three], {}, **_prune_args(torch.float16, **sizes)) == [two, three]
    assert kernel.early_config_prune([two, three], {}, **_prune_args(torch.float32, **sizes)) == [two]


def test_prune_keeps_one_config_when_none_fits(monkeypatch):
    monkeypatch.setattr(launch, "SM90_SHARED_MEMORY", 1)
    kernel = conv2d_backward._conv_relu_dgrad_kernel
    args = _prune_args(torch.float32, P_BUCKET=4096, C_IN=64, C_OUT=64)
    kept = kernel.early_config_prune(kernel.configs, {}, **args)
    assert len(kept) == 1
    assert kept[0] is min(kernel.configs, key=lambda c: kernel.early_config_prune.shared_memory(c, args))


def test_prune_picks_the_fp64_configs_and_snug_tiles():
    kernel = conv2d_forward._conv2d_bias_relu_kernel
    prune = kernel.early_config_prune
    args = _prune_args(torch.float64, P_BUCKET=2**17, C_IN=96, C_OUT=128, USE_DOT=False)
    assert all(launch.is_fp64_config(c) for c in prune(kernel.configs, {}, **args))
    # block 3a's 5x5 conv, 16 -> 32 channels: tiles wider than 32 output or 16 input channels are mostly padding
    args = _prune_args(torch.float16, P_BUCKET=2**17, C_IN=16, C_OUT=32, USE_DOT=True)
    kept = prune(kernel.configs, {}, **args)
    assert kept and all(c.kwargs["BLOCK_N"] == 32 and c.kwargs["BLOCK_K"] == 16 for c in kept)
    assert not any(launch.is_fp64_config(c) for c in kept)


def test_prune_picks_the_configs_of_an_fp32_precision_and_small_tiles_for_nchw_outputs():
    kernel = conv2d_forward._conv2d_bias_relu_kernel
    prune = kernel.early_config_prune
    sizes = dict(P_BUCKET=2**17, C_IN=96, C_OUT=128, USE_DOT=True)
    ieee = prune(kernel.configs, {}, **_prune_args(torch.float32, **{**sizes, "PRECISION": "ieee"}))
    assert ieee and all(any(c is k for k in conv2d_forward.CONV_IEEE_CONFIGS) for c in ieee)
    for dtype, precision in ((torch.float32, "tf32"), (torch.float16, "ieee")):
        kept = prune(kernel.configs, {}, **_prune_args(dtype, **{**sizes, "PRECISION": precision}))
        assert kept and not any(any(c is k for k in conv2d_forward.CONV_IEEE_CONFIGS) for c in kept)
    # an NCHW output: at most 32 accumulator values a thread
    nchw = prune(kernel.configs, {}, **_prune_args(torch.float16, **{**sizes, "stride_out_c": 784}))
    assert nchw and all(c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] <= 1024 * c.num_warps for c in nchw)
    assert any(c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] > 1024 * c.num_warps
               for c in prune(kernel.configs, {}, **_prune_args(torch.float16, **sizes)))


# ---------------------------------------------------------------------------------------------
# keyword launches through Triton's autotuner (interpreter, stub benchmark)

def _stub_bench(kernel_call, quantiles):
    kernel_call()
    return [1.0, 1.0, 1.0]


def _retuned(kernel, configs):
    """``kernel``'s autotuner (key, prune) over small ``configs`` with a benchmark that runs each candidate once."""
    return triton.autotune(configs=configs, key=kernel.keys,
                           prune_configs_by={"early_config_prune": kernel.early_config_prune},
                           do_bench=_stub_bench)(kernel.fn)


@INTERPRETER_ONLY
def test_forward_through_the_autotuner(monkeypatch):
    tuned = _retuned(conv2d_forward._conv2d_bias_relu_kernel, [
        triton.Config({"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "FLAT": True}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 16, "FLAT": False}, num_warps=4, num_stages=2),
    ])
    monkeypatch.setattr(conv2d_forward, "_conv2d_bias_relu_kernel", tuned)
    monkeypatch.setattr(launch, "interpreting", lambda: False)
    g = torch.Generator().manual_seed(3)
    for n in (3, 4):  # 48 and 64 pixels: one bucket, tuned once
        x = torch.randn((n, 20, 4, 4), generator=g).contiguous(memory_format=torch.channels_last)
        w, b = torch.randn((17, 20, 3, 3), generator=g) * 0.1, torch.randn((17,), generator=g)
        out = torch.full((n, 17, 4, 4), float("nan"))
        conv2d_forward.launch_conv2d_bias_relu(x, w, b, out)
        assert_close(out, conv_ref(x, w, b), torch.float32, f"autotuned conv, batch {n}")
    assert len(tuned.cache) == 1


@INTERPRETER_ONLY
def test_atomic_weight_grad_through_the_autotuner(monkeypatch):
    # the atomic variant accumulates into one row: zero_if_atomic must zero it before each benchmark run and the
    # final run, or the NaN the buffer starts with (and the earlier runs' sums) would show
    tuned = _retuned(conv2d_backward._conv_relu_wgrad_kernel, [
        triton.Config({"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 32}, num_warps=4, num_stages=2,
                      pre_hook=launch.zero_if_atomic),
        triton.Config({"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 64}, num_warps=4, num_stages=2,
                      pre_hook=launch.zero_if_atomic),
    ])
    monkeypatch.setattr(conv2d_backward, "_conv_relu_wgrad_kernel", tuned)
    monkeypatch.setattr(launch, "interpreting", lambda: False)
    monkeypatch.setattr(conv2d_backward, "interpreting", lambda: False)
    monkeypatch.setattr(conv2d_backward, "_sm_count", lambda device: 2)
    partial_buffer = conv2d_backward.partial_buffer

    def poisoned_partials(*args):
        part, atomic = partial_buffer(*args)
        assert atomic
        return part.fill_(float("nan")), atomic

    monkeypatch.setattr(conv2d_backward, "partial_buffer", poisoned_partials)
    g = torch.Generator().manual_seed(5)
    t = torch.relu(torch.randn((2, 6, 5, 7), generator=g, dtype=torch.float64)).requires_grad_()
    weight = torch.randn((5, 6, 3, 3), generator=g, dtype=torch.float64).requires_grad_()
    bias = torch.randn((5,), generator=g, dtype=torch.float64).requires_grad_()
    y = torch.relu(torch.nn.functional.conv2d(t, weight, bias, padding=1))
    grad_y = torch.randn(y.shape, generator=g, dtype=torch.float64)
    ref_w, ref_b = torch.autograd.grad(y, (weight, bias), grad_y)
    gw, gb = torch.full((5, 6, 3, 3), float("nan")), torch.full((5,), float("nan"))
    conv2d_backward.launch_conv2d_relu_weight_grad(grad_y.float(), y.detach().float(), t.detach().float(), gw, gb,
                                                   deterministic=False)
    assert_close(gw, ref_w, torch.float32, "atomic grad_weight, autotuned")
    assert_close(gb, ref_b, torch.float32, "atomic grad_bias, autotuned")
    assert len(tuned.cache) == 1


# ---------------------------------------------------------------------------------------------
# int32 offsets, with an int64 variant for tensors past 2**31 elements

def test_index_dtype_is_int32_until_a_tensor_spans_2_to_the_31_elements():
    small = torch.empty(2, 3, 4, 5)
    assert launch.index_dtype(small, None, torch.empty(0)) == triton.language.int32
    # meta tensors: shapes and strides without memory
    assert launch.index_dtype(small, torch.empty((2, 2**30 - 1), device="meta")) == triton.language.int32
    assert launch.index_dtype(small, torch.empty((2, 2**30), device="meta")) == triton.language.int64
    # what counts is the span from the data pointer, so a channel slice of a huge buffer counts as huge
    huge = torch.empty((8, 2**29, 1, 1), device="meta")[:, :1]  # 8 x 1 elements, 7 * 2**29 apart
    assert launch.index_dtype(huge) == triton.language.int64


@pytest.fixture
def int64_offsets(monkeypatch):
    """Every launcher's INDEX forced to int64, as for tensors past 2**31 elements (small tensors, so the int64
    variant of each kernel runs under the interpreter too)."""
    for module in (conv2d_forward, stem_forward, conv2d_backward, stem_backward):
        monkeypatch.setattr(module, "index_dtype", lambda *tensors: triton.language.int64)


def test_the_int64_variant_computes_the_same(int64_offsets):
    # forward and backward of a whole block through the ops, with every kernel in its int64 variant
    from fastinception import FastInception, Inception

    from helpers import DEVICE, check_against_float64, make_input, without_tf32

    torch.manual_seed(3)
    ref = Inception(7, 3, (4, 5), (2, 3), 2, device=DEVICE)
    fast = FastInception.from_module(ref, backend="triton")
    with without_tf32():  # fp32's tolerance on a GPU too
        check_against_float64(fast, ref, make_input((2, 7, 5, 4), "nhwc", torch.float32, DEVICE, seed=4), "nhwc")


def test_prune_gives_fp32_without_tf32_its_own_tiles_when_the_epilogue_writes_batchnorms_statistics():
    kernel = conv2d_general._conv2d_general_kernel
    prune = kernel.early_config_prune
    sizes = dict(C_IN=192, C_OUT_A=320, C_OUT_B=0, USE_DOT=True, PRECISION="ieee")
    t = torch.empty(1)

    def kept(stats, precision="ieee", dtype=torch.float32):
        return prune(kernel.configs, {}, **_prune_args(dtype, **{**sizes, "sa_ptr": stats, "PRECISION": precision}))

    def only(configs, listed):
        return configs and all(any(c is k for k in listed) for c in configs)

    assert only(kept(t), conv2d_general.GENERAL_CONV_IEEE_STATS_CONFIGS)
    assert only(kept(None), conv2d_general.GENERAL_CONV_IEEE_CONFIGS)
    assert only(kept(t, "tf32"), conv2d_general.GENERAL_CONV_TF32_CONFIGS)
    assert not any(any(c is k for k in conv2d_general.GENERAL_CONV_IEEE_STATS_CONFIGS)
                   for c in kept(t, dtype=torch.float16))
