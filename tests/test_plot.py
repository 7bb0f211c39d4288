"""`edgekit report --plot`: the arena chart shows the memory planner's placement, exactly.

Rectangles are checked against the plan (offsets, buffer live ranges) and the graph, through the
pixel geometry of the drawn SVG, not against the plotting code's own data.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli import main
from edgekit.frontends.tflite_writer import TFLiteBuilder
from edgekit.models.dscnn import build_dscnn_kws
from edgekit.pipeline import Compiled, compile_file
from tests.conftest import mlperf_model

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def dscnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "dscnn.tflite"
    path.write_bytes(build_dscnn_kws(0))
    return path


def _arena_svg(page: str) -> ET.Element:
    m = re.search(r'<svg [^>]*class="arena-chart".*?</svg>', page, re.S)
    assert m, "no arena chart in the page"
    return ET.fromstring(m.group(0))


def _live_range(compiled: Compiled, tensor: str) -> tuple[int, int]:
    """The ops during which a tensor holds data, from the graph itself."""
    graph = compiled.graph
    n = len(graph.ops)
    uses = [i for i, op in enumerate(graph.ops) if tensor in (*op.inputs, *op.outputs)]
    if tensor in graph.inputs:
        uses.append(0)
    if tensor in graph.outputs:
        uses.append(n)
    return min(uses), max(uses)


def _check_arena_chart(svg: ET.Element, compiled: Compiled) -> None:
    plan, graph = compiled.plan, compiled.graph
    frame = svg.find(f".//{SVG}rect[@class='arena-frame']")
    assert frame is not None
    fx, fy = float(frame.get("x")), float(frame.get("y"))
    fw, fh = float(frame.get("width")), float(frame.get("height"))
    assert int(frame.get("data-bytes")) == plan.arena_bytes
    n_cols = len(graph.ops) + 1  # every op, then the outputs waiting to be read
    assert int(frame.get("data-columns")) == n_cols
    colw, per_byte = fw / n_cols, fh / plan.arena_bytes

    rects = [r for r in svg.iter(f"{SVG}rect") if "tensor" in (r.get("class") or "").split()]
    acts = {r.get("data-tensor"): r for r in rects if "activation" in r.get("class").split()}
    scratch = [r for r in rects if "scratch" in r.get("class").split()]
    assert len(acts) == len([r for r in rects if "activation" in r.get("class")])  # no dupes
    assert set(acts) == set(plan.offsets)  # one rectangle per planned tensor
    assert len(scratch) == len(plan.scratch)
    buffer_of = {t: b for b in plan.buffers for t in b.tensors}
    for name, r in acts.items():
        x, y = float(r.get("x")), float(r.get("y"))
        w, h = float(r.get("width")), float(r.get("height"))
        assert y - fy == pytest.approx(plan.offsets[name] * per_byte, abs=0.01), name
        assert h == pytest.approx(graph.tensor(name).nbytes * per_byte, abs=0.01), name
        first, last = _live_range(compiled, name)
        assert x - fx == pytest.approx(first * colw, abs=0.01), name
        assert w == pytest.approx((last - first + 1) * colw, abs=0.01), name
        b = buffer_of[name]
        assert b.offset == plan.offsets[name] and b.start <= first <= last <= b.end
        # inside the arena
        assert fy - 0.01 <= y and y + h <= fy + fh + 0.01
    for op_name, (offset, size) in plan.scratch.items():
        r = next(r for r in scratch if r.get("data-tensor") == f"scratch:{op_name}")
        i = next(k for k, op in enumerate(graph.ops) if op.name == op_name)
        assert float(r.get("y")) - fy == pytest.approx(offset * per_byte, abs=0.01)
        assert float(r.get("height")) == pytest.approx(size * per_byte, abs=0.01)
        assert float(r.get("x")) - fx == pytest.approx(i * colw, abs=0.01)


def test_html_plot_places_every_tensor_where_the_planner_did(dscnn: Path, tmp_path: Path) -> None:
    out = tmp_path / "kws.html"
    assert main(["report", str(dscnn), "--plot", str(out)]) == 0
    page = out.read_text()
    _check_arena_chart(_arena_svg(page), compile_file(dscnn))
    # self-contained: no scripts, no external resources
    assert "<script" not in page.lower()
    assert not re.search(r'(src|href)\s*=', page, re.I)
    assert not re.search(r'https?://(?!www\.w3\.org/2000/svg)', page)


def test_cost_bars_follow_the_report(dscnn: Path, tmp_path: Path) -> None:
    from edgekit.report import build_report

    out = tmp_path / "kws.svg"
    assert main(["report", str(dscnn), "--plot", str(out)]) == 0
    svg = ET.parse(out).getroot()  # the standalone SVG is well-formed XML
    compiled = compile_file(dscnn)
    report = build_report(compiled, {})
    bars = {cls: {int(r.get("data-layer")): r for r in svg.iter(f"{SVG}rect")
                  if r.get("class") == f"bar {cls}"} for cls in ("macs", "weights")}
    for cls, key in (("macs", "macs"), ("weights", "weight_bytes")):
        values = {e["index"]: e[key] for e in report["layers"]}
        assert {k: int(r.get("data-value")) for k, r in bars[cls].items()} == values
        top = max(values.values())
        widest = max(float(r.get("width")) for r in bars[cls].values())
        for k, r in bars[cls].items():
            assert float(r.get("width")) == pytest.approx(widest * values[k] / top, abs=0.01)
    _check_arena_chart(svg.find(f".//{SVG}svg[@class='arena-chart']"), compiled)


@pytest.mark.mlperf
@pytest.mark.parametrize("key", ["vww", "ic"])
def test_plot_matches_plan_on_mlperf_models(key: str, tmp_path: Path) -> None:
    path = mlperf_model(key)
    out = tmp_path / "m.html"
    assert main(["report", str(path), "--plot", str(out)]) == 0
    _check_arena_chart(_arena_svg(out.read_text()), compile_file(path))


def test_names_from_the_model_cannot_break_the_page(tmp_path: Path) -> None:
    b = TFLiteBuilder()
    x = b.tensor('in<script>&"\x01', (1, 8), np.int8, scale=0.1, zero_point=0)
    y = b.tensor("out</svg>", (1, 8), np.int8, scale=0.1, zero_point=0)
    b.op("RELU", [x], [y])
    b.inputs([x])
    b.outputs([y])
    model = tmp_path / "evil.tflite"
    model.write_bytes(b.finish())
    out = tmp_path / "evil.html"
    assert main(["report", str(model), "--plot", str(out)]) == 0
    page = out.read_text()
    assert "<script" not in page and "\x01" not in page
    svg = _arena_svg(page)
    names = {r.get("data-tensor") for r in svg.iter(f"{SVG}rect") if r.get("data-tensor")}
    assert names == {'in<script>&"\\x01', "out</svg>"}


def test_png_without_matplotlib_is_a_clear_error(dscnn: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now raises ImportError
    out = tmp_path / "kws.png"
    assert main(["report", str(dscnn), "--plot", str(out)]) == 2
    cap = capsys.readouterr()
    assert ".html" in cap.err and "edgekit[plot]" in cap.err and "Traceback" not in cap.err
    assert cap.out == ""  # no half report either
    assert list(tmp_path.iterdir()) == []


def test_png_with_matplotlib(dscnn: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "kws.png"
    assert main(["report", str(dscnn), "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_draws_the_arena_and_both_cost_panels(dscnn: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from edgekit.plot import PALETTE

    out = tmp_path / "kws.png"
    assert main(["report", str(dscnn), "--plot", str(out)]) == 0
    pixels = np.round(imread(out)[..., :3] * 255).astype(int).reshape(-1, 3)

    def count(rgb: np.ndarray) -> int:
        return int(np.count_nonzero(np.all(np.abs(pixels - rgb) <= 2, axis=1)))

    def hex_rgb(h: str) -> np.ndarray:
        return np.array([int(h[k:k + 2], 16) for k in (1, 3, 5)])

    # the cost bars are opaque: MACs in blue, weight bytes in vermilion
    assert count(hex_rgb("#0072B2")) > 2000 and count(hex_rgb("#D55E00")) > 2000
    # the tensors are 90% opaque over white, one colour per producing op
    tensor_colours = [c for c in PALETTE if count(np.round(hex_rgb(c) * 0.9 + 25.5)) > 500]
    assert len(tensor_colours) >= 4


def test_unknown_plot_suffix(dscnn: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(dscnn), "--plot", str(tmp_path / "kws.pdf")]) == 2
    assert ".html" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
