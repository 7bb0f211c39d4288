"""On-device training (docs/training.md): the generated train step equals the numpy golden model
bit for bit on the host and under QEMU, the FP32 gradients agree with PyTorch autograd, and the
command line refuses what it cannot train with one clean error.

The expected values come from edgekit/train/golden.py, written from the contract operation by
operation; the C comes from the templates under codegen/templates/train. Neither is derived
from the other.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.ir import serialize
from edgekit.ir.graph import Graph
from edgekit.train import build_training
from edgekit.train.chain import FloatChain
from edgekit.train.golden import GoldenTrainer
from edgekit.train.runners import HostTrainer
from tests.test_fp16 import _require  # skips when a target's tools are missing

H, W, C_IN = 6, 5, 3
CLASSES = 4


def kws_like(seed: int = 0, softmax: bool = True) -> Graph:
    """conv 3x3 + relu, pointwise conv + relu, global average pool, reshape, fc (+ softmax):
    the shape of a DS-CNN keyword spotter's last layers, small enough for seconds under QEMU."""
    c = FloatChain((1, H, W, C_IN), seed)
    c.conv(8, 3, pad=1)
    c.conv(6, 1, act="relu6")
    c.global_pool()
    c.flatten()
    c.fc(CLASSES)
    if softmax:
        c.softmax()
    return c.graph("kws_like")


def conv_net(seed: int = 0, stride: int = 1, pad: int = 1, k: int = 3) -> Graph:
    """Two kxk convolutions, a pointwise one, pool, fc: trained whole, so the im2col of the
    first layer reads the model input and the second one needs col2im for its input gradient."""
    c = FloatChain((1, 7, 6, 3), seed)
    c.conv(5, k, stride=stride, pad=pad)
    c.conv(6, k, stride=stride, pad=pad, act="relu6")
    c.conv(4, 1)
    c.global_pool()
    c.flatten()
    c.fc(CLASSES)
    return c.graph("conv_net")


def ds_net(seed: int = 0) -> Graph:
    """Depthwise-separable blocks with every pooling kind between them (two with a fused clamp),
    trained whole."""
    c = FloatChain((1, 9, 8, 2), seed)
    c.conv(4, 3, stride=2, pad=1)
    c.dwconv(3, pad=1)
    c.conv(4, 1, act="none")
    c.pool("max_pool2d", 2, 1, act="relu")  # a ReLU after a pool: its mask before the routing
    c.dwconv(3, mult=2, pad=1, act="relu6")
    c.pool("avg_pool2d", 2, 2, pad=1)
    c.global_pool(act="relu6")
    c.flatten()
    c.fc(CLASSES)
    return c.graph("ds_net")


def mlp(seed: int = 0) -> Graph:
    """fc + relu, fc + relu, fc: three trainable layers on a flat input."""
    c = FloatChain((1, 12), seed)
    c.fc(10, "relu")
    c.fc(8, "relu")
    c.fc(3)
    return c.graph("mlp")


def _samples(graph: Graph, n: int, loss: str, seed: int = 1) -> list[tuple[np.ndarray, Any]]:
    rng = np.random.default_rng(seed)
    shape = graph.tensor(graph.inputs[0]).shape
    outputs = int(np.prod(graph.tensor(graph.outputs[0]).shape))
    out: list[tuple[np.ndarray, Any]] = []
    for i in range(n):
        x = rng.normal(0.0, 1.0, shape).astype(np.float32)
        target: Any = i % outputs if loss == "cross-entropy" else rng.normal(0, 1, outputs)
        out.append((x, target))
    return out


def _golden_run(build: Any, samples: list) -> tuple[list[np.float32], list[bytes]]:
    gt = GoldenTrainer(build.spec)
    dt = build.spec.dtype
    losses, blobs = [], []
    for x, t in samples:
        target = t if build.spec.loss == "cross-entropy" else np.asarray(t).astype(dt)
        losses.append(gt.step(x.astype(dt), target))
        blobs.append(gt.weights_blob())
    return losses, blobs


def _same_loss(got: np.float32, want: np.float32) -> bool:
    return np.asarray(got, np.float32).view(np.uint32) == np.asarray(want, np.float32).view(
        np.uint32
    )


def _assert_runs_equal(what: str, got: tuple[list, list], want: tuple[list, list]) -> None:
    for step, (gl, gw, wl, ww) in enumerate(zip(*got, *want, strict=True)):
        assert _same_loss(gl, wl), f"{what} step {step}: loss {gl!r} != golden {wl!r}"
        if gw != ww:
            a, b = np.frombuffer(gw, np.uint8), np.frombuffer(ww, np.uint8)
            first = int(np.flatnonzero(a != b)[0])
            raise AssertionError(f"{what} step {step}: weights differ first at byte {first}")


# --- host -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "loss", "optimizer"),
    [  # every loss and optimizer in both formats
        ("fp16", "cross-entropy", "sgd:lr=0.05,momentum=0.9"),
        ("fp16", "mse", "sgd:lr=0.05"),
        ("fp32", "cross-entropy", "sgd:lr=0.05"),
        ("fp32", "mse", "sgd:lr=0.05,momentum=0.9"),
    ],
)
def test_host_train_step_equals_golden(precision: str, loss: str, optimizer: str) -> None:
    graph = kws_like()
    build = build_training(graph, precision, 2, loss, optimizer)
    host = HostTrainer(build)
    host.init()
    samples = _samples(graph, 5, loss)
    got_l, got_w = [], []
    for x, t in samples:
        got_l.append(host.step(x, t))
        got_w.append(host.weights())
    want = _golden_run(build, samples)
    _assert_runs_equal(f"host {precision} {loss} {optimizer}", (got_l, got_w), want)
    # the weights really moved: a step that trains nothing would also "match"
    assert got_w[-1] != GoldenTrainer(build.spec).weights_blob()
    # predict uses the trained weights and equals the golden forward
    x = samples[0][0]
    gt = GoldenTrainer(build.spec)
    gt.w, gt.b = _unpack(build, got_w[-1])
    assert host.predict(x).tobytes() == gt.predict(x.astype(build.spec.dtype)).tobytes()


@pytest.mark.parametrize(
    ("precision", "stride", "pad", "k"),
    [("fp16", 1, 1, 3), ("fp32", 2, 1, 3), ("fp16", 2, 0, 2)],
)
def test_conv2d_im2col_train_step_equals_golden(precision: str, stride: int, pad: int, k: int):
    graph = conv_net(stride=stride, pad=pad, k=k)
    build = build_training(graph, precision, 4, "cross-entropy", "sgd:lr=0.05,momentum=0.9")
    assert [t.conv is not None for t in build.spec.layers] == [True, True, False, False]
    _check_untrained_forward_then_steps(build, graph, f"conv {precision}")


def _check_untrained_forward_then_steps(build: Any, graph: Graph, what: str) -> None:
    """Before any step the tail's forward is the inference contract bit for bit (the same
    kernels' order of roundings); then three steps equal the golden model."""
    from edgekit.reference import fp16_golden

    host = HostTrainer(build)
    host.init()
    samples = _samples(graph, 3, "cross-entropy")
    x0 = samples[0][0].astype(build.spec.dtype)
    logits = fp16_golden.run_graph_all(build.compiled.graph, [x0])[graph.outputs[0]]
    assert host.predict(samples[0][0]).tobytes() == logits.reshape(-1).tobytes()
    got_l, got_w = [], []
    for x, t in samples:
        got_l.append(host.step(x, t))
        got_w.append(host.weights())
    _assert_runs_equal(what, (got_l, got_w), _golden_run(build, samples))


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_depthwise_and_pooling_train_step_equals_golden(precision: str) -> None:
    graph = ds_net()
    build = build_training(graph, precision, 5, "cross-entropy", "sgd:lr=0.05,momentum=0.9")
    kinds = [t.kind for t in build.spec.tail]
    assert kinds == ["dense", "depthwise", "dense", "pool", "depthwise", "pool", "avgpool",
                     "reshape", "dense"]  # fmt: skip
    _check_untrained_forward_then_steps(build, graph, f"ds {precision}")


def _unpack(build: Any, blob: bytes) -> tuple[list[np.ndarray], list[np.ndarray]]:
    gt = GoldenTrainer(build.spec)
    gt.load_weights(blob)
    return gt.w, gt.b


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_three_dense_layers_and_weight_import(precision: str) -> None:
    graph = mlp()
    build = build_training(graph, precision, 3, "mse", "sgd:lr=0.02,momentum=0.5")
    host = HostTrainer(build)
    host.init()
    samples = _samples(graph, 4, "mse", seed=7)
    got_l, got_w = [], []
    for x, t in samples:
        got_l.append(host.step(x, t))
        got_w.append(host.weights())
    _assert_runs_equal(f"mlp {precision}", (got_l, got_w), _golden_run(build, samples))
    # import restores exactly what export wrote (the persisted weights survive a reboot)
    host.init()
    assert host.weights() != got_w[-1]
    host.import_weights(got_w[-1])
    assert host.weights() == got_w[-1]


def test_generated_training_code_is_reproducible() -> None:
    a = build_training(kws_like(), "fp16", 2, "cross-entropy", "sgd:lr=0.01").files
    b = build_training(kws_like(), "fp16", 2, "cross-entropy", "sgd:lr=0.01").files
    assert a == b
    train_c = a["kws_like_train.c"]
    assert "malloc" not in train_c
    # trained weights: const initial copies in flash, working copies in RAM
    assert "static const uint16_t ek_tw0_init[" in train_c
    assert "static uint16_t ek_tw0[" in train_c


# --- memory plan in the report --------------------------------------------------------------------


def test_report_shows_training_ram_separately() -> None:
    build = build_training(kws_like(), "fp16", 2, "cross-entropy", "sgd:lr=0.01,momentum=0.9")
    r = build.report()
    ram = r["training_ram_bytes"]
    params = 6 * (8 + 1) + CLASSES * (6 + 1)  # pointwise 8 -> 6, fc 6 -> 4
    assert r["parameters"] == params
    assert ram["trained_weights"] == params * 2
    assert ram["momentum"] == params * 2
    parts = ("trained_weights", "momentum", "tail_activations", "gradient_rows",
             "weight_gradient_scratch")  # fmt: skip
    assert ram["total"] == sum(ram[k] for k in parts)
    # tail activations: pointwise output 30x6, pooled 6, logits 4, each 16-byte aligned
    assert ram["tail_activations"] == 368 + 16 + 16
    assert r["training_flash_bytes"]["initial_weights"] == params * 2
    assert r["inference_arena_bytes"] > 0


# --- emulated targets -----------------------------------------------------------------------------


@pytest.mark.emulated
@pytest.mark.parametrize(
    ("target", "precision", "loss", "optimizer"),
    [
        ("rv32-zfh-v", "fp16", "cross-entropy", "sgd:lr=0.05,momentum=0.9"),
        ("rv32-zfh-v", "fp32", "mse", "sgd:lr=0.05"),
        ("cortex-m55", "fp16", "cross-entropy", "sgd:lr=0.05"),
        ("cortex-m55", "fp32", "cross-entropy", "sgd:lr=0.05,momentum=0.9"),
        ("rv32-zfh-v", "fp16", "conv", "sgd:lr=0.05,momentum=0.9"),
        ("cortex-m55", "fp16", "conv", "sgd:lr=0.05"),
        ("rv32-zfh-v", "fp16", "ds", "sgd:lr=0.05"),
        ("rv32-zfh-v", "fp16", "wide", "sgd:lr=0.01,momentum=0.9"),
        ("rv32-zfh-v", "fp32", "wide", "sgd:lr=0.01"),
        ("rv32-zfh-v", "fp16", "wide-mse", "sgd:lr=0.01"),  # 66 outputs: 8 full blocks and 2
        ("cortex-m55", "fp32", "ds", "sgd:lr=0.05,momentum=0.9"),
    ],
)
def test_emulated_train_step_equals_golden(
    target: str, precision: str, loss: str, optimizer: str
) -> None:
    from edgekit.train.runners import EmulatedTrainer

    _require(target)
    if loss == "conv":  # every layer trained: im2col, col2im, pointwise, pool, fc
        graph, loss, last = conv_net(seed=3, stride=2), "cross-entropy", 4
    elif loss == "ds":  # depthwise, max and average pools
        graph, loss, last = ds_net(seed=3), "cross-entropy", 5
    elif loss.startswith("wide"):  # more rows, inputs and units than one LMUL-8 vector holds
        chain = FloatChain((1, 10, 10, 80), 3).conv(70, 1).global_pool().flatten().fc(66)
        loss = "mse" if loss == "wide-mse" else "cross-entropy"
        graph, last = chain.graph("wide"), 2
    else:
        graph, last = kws_like(seed=3), 2
    build = build_training(graph, precision, last, loss, optimizer, target)
    samples = _samples(graph, 3, loss, seed=5)
    losses, weights, _ = EmulatedTrainer(build).run(samples)
    _assert_runs_equal(f"{target} {precision}", (losses, weights), _golden_run(build, samples))
    assert weights[-1] != GoldenTrainer(build.spec).weights_blob()


# --- FP32 against PyTorch autograd ----------------------------------------------------------------


def _torch_tail(build: Any, x: np.ndarray, target: Any) -> tuple[float, list, list]:
    """The tail of `build` in PyTorch from the same frozen features: loss and gradients."""
    torch = pytest.importorskip("torch")
    spec = build.spec
    gt = GoldenTrainer(spec)
    v = torch.tensor(gt.features(x.astype(np.float32)), dtype=torch.float64)
    params = []
    for t in spec.tail:
        if t.trained:
            w = torch.tensor(t.weights.astype(np.float64), requires_grad=True)
            b = torch.tensor(t.bias.astype(np.float64), requires_grad=True)
            params.append((w, b))
            if t.kind == "dense" and t.conv is not None:
                g = t.conv
                img = v.reshape(1, g.h, g.w, g.c).permute(0, 3, 1, 2)
                kernel = w.reshape(t.units, g.kh, g.kw, g.c).permute(0, 3, 1, 2)
                out = torch.nn.functional.conv2d(
                    img, kernel, b, (g.sh, g.sw), (g.pt, g.pl), (g.dh, g.dw)
                )
                v = out.permute(0, 2, 3, 1).reshape(t.rows, t.units)
            elif t.kind == "dense":
                v = v.reshape(t.rows, t.depth) @ w.T + b
            else:  # depthwise: weights [units][taps]
                g = t.conv
                img = v.reshape(1, g.h, g.w, g.c).permute(0, 3, 1, 2)
                kernel = w.reshape(t.units, 1, g.kh, g.kw)
                out = torch.nn.functional.conv2d(
                    img, kernel, b, (g.sh, g.sw), (g.pt, g.pl), (g.dh, g.dw), groups=g.c
                )
                v = out.permute(0, 2, 3, 1).reshape(t.rows, t.units)
            v = v.reshape(-1)
        elif t.kind == "avgpool":
            v = v.reshape(t.rows, t.units).mean(dim=0)
        elif t.kind == "pool":
            g = t.conv
            img = v.reshape(1, g.h, g.w, g.c).permute(0, 3, 1, 2)
            f = torch.nn.functional
            args = ((g.kh, g.kw), (g.sh, g.sw), (g.pt, g.pl))
            out = (
                f.max_pool2d(img, *args)
                if t.pool == "max"
                else f.avg_pool2d(img, *args, count_include_pad=False)
            )
            v = out.permute(0, 2, 3, 1).reshape(-1)
        if t.activation == "relu":
            v = torch.relu(v)
        elif t.activation == "relu6":
            v = torch.clamp(v, 0.0, 6.0)
    if spec.loss == "cross-entropy":
        loss = torch.nn.functional.cross_entropy(v[None, :], torch.tensor([int(target)]))
    else:
        loss = torch.mean((v - torch.tensor(np.asarray(target, np.float64))) ** 2)
    loss.backward()
    return (
        float(loss.detach()),
        [w.grad.numpy() for w, _ in params],
        [b.grad.numpy() for _, b in params],
    )


@pytest.mark.parametrize(("loss", "model"), [("cross-entropy", "kws"), ("mse", "kws"),
                                             ("cross-entropy", "conv"),
                                             ("mse", "ds")])  # fmt: skip
def test_fp32_gradients_match_pytorch(loss: str, model: str) -> None:
    pytest.importorskip("torch")
    if model == "ds":
        graph, last = ds_net(seed=2), 5
    elif model == "conv":
        graph, last = conv_net(seed=2, stride=2), 4  # conv1 passes its input gradient: col2im
    else:
        graph, last = kws_like(seed=2), 2
    build = build_training(graph, "fp32", last, loss, "sgd:lr=0.1")
    (x, t), = _samples(graph, 1, loss, seed=11)  # fmt: skip
    target = t if loss == "cross-entropy" else np.asarray(t, np.float32)
    want_loss, want_gw, want_gb = _torch_tail(build, x, target)
    got_loss, gws, gbs = GoldenTrainer(build.spec).gradients(x, target)
    assert got_loss == pytest.approx(want_loss, rel=1e-5, abs=1e-6)
    for g, w in zip(gws + gbs, want_gw + want_gb, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
    # and the generated C applied exactly those gradients: w1 = w0 - lr g, within rounding
    host = HostTrainer(build)
    host.init()
    host.step(x, t)
    ws, bs = _unpack(build, host.weights())
    for layer, w1, b1, gw, gb in zip(build.spec.layers, ws, bs, want_gw, want_gb, strict=True):
        np.testing.assert_allclose(w1, layer.weights - 0.1 * gw, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b1, layer.bias - 0.1 * gb, rtol=1e-5, atol=1e-6)


# --- errors ---------------------------------------------------------------------------------------


def test_training_errors_in_the_api() -> None:
    with pytest.raises(EdgekitError, match="larger than"):
        build_training(mlp(), "fp16", 4)
    with pytest.raises(EdgekitError, match="fp16 or fp32"):
        build_training(mlp(), "int8", 1)
    with pytest.raises(EdgekitError, match="unknown optimizer"):
        build_training(mlp(), "fp16", 1, optimizer="adam")
    with pytest.raises(EdgekitError, match="momentum"):
        build_training(mlp(), "fp16", 1, optimizer="sgd:momentum=1.5")
    with pytest.raises(EdgekitError, match="rounds to 0"):
        build_training(mlp(), "fp16", 1, optimizer="sgd:lr=1e-9")
    with pytest.raises(EdgekitError, match=r"softmax1 \(softmax\) lies in the trainable tail"):
        build_training(FloatChain((1, 8)).fc(6).softmax().fc(3).graph("mid_softmax"), "fp16", 2)
    with pytest.raises(EdgekitError, match="'relu_n1_to_1' has no backward kernel"):
        build_training(FloatChain((1, 8)).fc(6).fc(3, "relu_n1_to_1").graph("clip"), "fp16", 1)
    with pytest.raises(EdgekitError, match="cross-entropy needs logits"):
        c = FloatChain((1, 8), 0)
        c.fc(3, "relu")
        build_training(c.graph("relu_head"), "fp16", 1)


def _edgekit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("train") / "kws_like.ekir"
    serialize.save(kws_like(), path)
    return path


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--precision", "int8", "--train-last", "1"], "fp16 or fp32"),
        (["--precision", "fp16", "--train-last", "9"], "--train-last"),
        (["--precision", "fp16", "--train-last", "1", "--optimizer", "adam:lr=1"], "optimizer"),
        (["--precision", "fp16", "--train-last", "1", "--optimizer", "sgd:lr=x"], "lr"),
        (["--precision", "fp16", "--train-last", "1", "--loss", "hinge"], "loss"),
        (["--precision", "fp16", "--loss", "mse"], "--train-last"),
    ],
)
def test_cli_errors_are_clean(model_file: Path, tmp_path: Path, flags: list, message: str) -> None:
    out = tmp_path / "out"
    proc = _edgekit("generate", str(model_file), *flags, "-o", str(out))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr
    assert not out.exists()


def test_cli_generate_and_report(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "odl"
    flags = ["--precision", "fp16", "--train-last", "2", "--loss", "cross-entropy"]
    proc = _edgekit(
        "generate", str(model_file), *flags, "--optimizer", "sgd:lr=0.01", "-o", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert "train RAM" in proc.stdout
    assert (out / "kws_like_train.c").is_file() and (out / "kws_like_train.h").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["training_ram_bytes"]["total"] > 0
    proc = _edgekit("report", str(model_file), "--precision", "fp32", "--train-last", "1",
                    "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["training"]["precision"] == "fp32"


@pytest.mark.emulated
def test_example_trains_on_the_emulated_mcu() -> None:
    _require("rv32-zfh-v")
    example = Path(__file__).resolve().parents[1] / "examples" / "odl_kws.py"
    proc = subprocess.run(
        [sys.executable, str(example), "--epochs", "2", "--samples", "8"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "equal the golden model bit for bit" in proc.stdout
    means = [float(line.split()[-1]) for line in proc.stdout.splitlines() if "mean loss" in line]
    assert len(means) == 2 and means[1] < means[0]


@pytest.mark.emulated
def test_mlperf_kws_float_trains_bit_exact_under_qemu() -> None:
    """The issue's command line on the MLPerf Tiny float keyword spotter: fp16, the pointwise
    conv and the classifier trained, rv32-zfh-v; two steps equal the golden model."""
    from edgekit.pipeline import load_model
    from edgekit.train.runners import EmulatedTrainer
    from tests.conftest import MLPERF_DIR

    path = MLPERF_DIR / "kws_ref_model_float32.tflite"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    _require("rv32-zfh-v")
    graph, _ = load_model(path)
    build = build_training(graph, "fp16", 2, "cross-entropy", "sgd:lr=0.01", "rv32-zfh-v")
    assert [t.name for t in build.spec.layers] == ["op8_conv2d", "op11_fully_connected"]
    samples = _samples(graph, 2, "cross-entropy", seed=4)
    losses, weights, _ = EmulatedTrainer(build).run(samples)
    _assert_runs_equal("kws fp16 rv32", (losses, weights), _golden_run(build, samples))
