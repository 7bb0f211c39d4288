"""`edgekit report --plot`: the arena over the layer schedule, and per-layer cost bars.

The arena chart has one column per op in schedule order (plus a last column, "out", for the
outputs the caller reads after the last op) and the arena's byte offsets top to bottom. Each
planned tensor is one rectangle: from the op that writes it (or op 0, for an input) to the last op
that reads it, at the offset the memory planner gave it, as tall as its bytes. Per-op scratch is
drawn the same way, hatched. Tensors that share storage (a reshape and its input) are separate
rectangles at the same offset. Below it, two bar charts: MACs and constant (weight) bytes per layer.

HTML and SVG are written by hand (inline SVG, no scripts, no external files), so they need no
dependency and open anywhere. PNG goes through matplotlib, an optional extra (`edgekit[plot]`).
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.pipeline import Compiled

FORMATS = {".html": "html", ".htm": "html", ".svg": "svg", ".png": "png"}

# Colour-blind-friendly qualitative palette (Okabe-Ito), cycled by the producing op's index.
PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
           "#999999"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _text(value: object) -> str:
    """Text from a model file, safe in XML/HTML: escaped, control characters written as \\xNN
    (XML 1.0 forbids them outright, so a browser would refuse the whole file)."""
    s = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))
    return html.escape(s, quote=True)


def arena_schedule(compiled: Compiled, report: dict[str, Any]) -> dict[str, Any]:
    """The plot's data: live range and placement of every planned tensor, and per-layer costs.

    A tensor lives from the first op that touches it to the last (graph inputs from op 0, graph
    outputs until the "out" column), the same rule the planner uses for its buffers.
    """
    graph, plan = compiled.graph, compiled.plan
    n_ops = len(graph.ops)
    first: dict[str, int] = {}
    last: dict[str, int] = {}

    def touch(t: str, i: int) -> None:
        first[t] = min(first.get(t, i), i)
        last[t] = max(last.get(t, i), i)

    for t in graph.inputs:
        touch(t, 0)
    for i, op in enumerate(graph.ops):
        for t in (*op.inputs, *op.outputs):
            if t in plan.offsets:
                touch(t, i)
    for t in graph.outputs:
        touch(t, n_ops)
    producer = {t: i for i, op in enumerate(graph.ops) for t in op.outputs}
    entries: list[dict[str, Any]] = []
    for t, offset in sorted(plan.offsets.items(), key=lambda kv: (first.get(kv[0], 0), kv[1])):
        if t not in first:
            continue  # planned but never touched: nothing lives there
        entries.append({
            "tensor": t, "kind": "activation", "offset": offset,
            "bytes": graph.tensor(t).nbytes, "first": first[t], "last": last[t],
            "producer": producer.get(t, -1),
        })
    op_index = {op.name: i for i, op in enumerate(graph.ops)}
    for op_name, (offset, size) in sorted(plan.scratch.items()):
        i = op_index[op_name]
        entries.append({
            "tensor": f"scratch:{op_name}", "kind": "scratch", "offset": offset, "bytes": size,
            "first": i, "last": i, "producer": i,
        })
    columns = [f"{i} {op.kind}" for i, op in enumerate(graph.ops)] + ["out"]
    layers = [
        {"index": e["index"], "kind": e["kind"], "name": e["name"], "macs": e["macs"],
         "weight_bytes": e["weight_bytes"]}
        for e in report["layers"]
    ]
    return {
        "model": report["model"],
        "target": report["target"],
        "arena_bytes": plan.arena_bytes,
        "lower_bound_bytes": plan.lower_bound_bytes,
        "columns": columns,
        "entries": entries,
        "layers": layers,
        "totals": report["totals"],
    }


# --- SVG ---------------------------------------------------------------------------------------

ARENA_H = 420.0  # the arena's pixel height, whatever its size: offsets scale linearly into it
LEFT, TOP = 90.0, 40.0


def _fmt(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def arena_svg(data: dict[str, Any]) -> str:
    cols = data["columns"]
    colw = max(18.0, min(60.0, 900.0 / len(cols)))
    width = LEFT + colw * len(cols) + 20
    label_h = 8.0 * max(len(c) for c in cols) * 0.75 + 10
    height = TOP + ARENA_H + label_h + 10
    arena = max(int(data["arena_bytes"]), 1)
    scale = ARENA_H / arena
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="arena-chart" width="{_fmt(width)}" '
        f'height="{_fmt(height)}" viewBox="0 0 {_fmt(width)} {_fmt(height)}" '
        'font-family="sans-serif" font-size="11">',
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ddd"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#777" stroke-width="2"/></pattern></defs>',
        f'<text x="{_fmt(LEFT)}" y="16" font-size="13" font-weight="bold">arena of '
        f'{_text(data["model"])}: {data["arena_bytes"]:,} bytes (liveness lower bound '
        f'{data["lower_bound_bytes"]:,})</text>',
        f'<text x="{_fmt(LEFT)}" y="32" fill="#555">one rectangle per tensor: offset (down) '
        'while it is live (across ops)</text>',
        # the frame is the whole arena over the whole schedule; its data-* attributes let a
        # reader (and the tests) map pixels back to bytes and ops
        f'<rect class="arena-frame" x="{_fmt(LEFT)}" y="{_fmt(TOP)}" '
        f'width="{_fmt(colw * len(cols))}" height="{_fmt(ARENA_H)}" fill="#fafafa" '
        f'stroke="#333" data-bytes="{data["arena_bytes"]}" data-columns="{len(cols)}"/>',
    ]
    for k in range(5):
        off = arena * k / 4
        y = TOP + off * scale
        out.append(f'<line x1="{_fmt(LEFT - 4)}" y1="{_fmt(y)}" x2="{_fmt(LEFT)}" y2="{_fmt(y)}" '
                   'stroke="#333"/>')
        out.append(f'<text x="{_fmt(LEFT - 6)}" y="{_fmt(y + 4)}" text-anchor="end">'
                   f'{int(off):,}</text>')
    for j, label in enumerate(cols):
        x = LEFT + colw * (j + 0.5)
        y = TOP + ARENA_H + 8
        out.append(f'<text x="{_fmt(x)}" y="{_fmt(y)}" transform="rotate(60 {_fmt(x)} '
                   f'{_fmt(y)})">{_text(label)}</text>')
    for e in data["entries"]:
        x = LEFT + colw * e["first"]
        w = colw * (e["last"] - e["first"] + 1)
        y = TOP + e["offset"] * scale
        h = e["bytes"] * scale
        fill = "url(#hatch)" if e["kind"] == "scratch" else PALETTE[e["producer"] % len(PALETTE)]
        tip = (f'{e["tensor"]}: {e["bytes"]:,} B at offset {e["offset"]:,}, '
               f'ops {e["first"]}-{e["last"]}')
        out.append(
            f'<rect class="tensor {e["kind"]}" x="{_fmt(x)}" y="{_fmt(y)}" width="{_fmt(w)}" '
            f'height="{_fmt(h)}" fill="{fill}" fill-opacity="0.85" stroke="#222" '
            f'stroke-width="0.5" data-tensor="{_text(e["tensor"])}" data-offset="{e["offset"]}" '
            f'data-bytes="{e["bytes"]}" data-first="{e["first"]}" data-last="{e["last"]}">'
            f"<title>{_text(tip)}</title></rect>"
        )
        if h >= 12 and w >= 40:
            out.append(f'<text x="{_fmt(x + 3)}" y="{_fmt(y + 11)}" font-size="9" '
                       f'pointer-events="none">{_text(e["tensor"])[: int(w / 5.5)]}</text>')
    out.append("</svg>")
    return "\n".join(out)


def cost_svg(data: dict[str, Any]) -> str:
    layers = data["layers"]
    row = 16.0
    label_w = 190.0
    bar_w = 300.0
    width = label_w + 2 * (bar_w + 90)
    height = 40 + row * len(layers) + 10
    max_macs = max((entry["macs"] for entry in layers), default=0) or 1
    max_w = max((entry["weight_bytes"] for entry in layers), default=0) or 1
    x_macs, x_w = label_w, label_w + bar_w + 90
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="cost-chart" width="{_fmt(width)}" '
        f'height="{_fmt(height)}" viewBox="0 0 {_fmt(width)} {_fmt(height)}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{_fmt(x_macs)}" y="16" font-size="13" font-weight="bold">MACs per layer '
        f'(total {data["totals"]["macs"]:,})</text>',
        f'<text x="{_fmt(x_w)}" y="16" font-size="13" font-weight="bold">weight bytes per layer '
        f'(total {data["totals"]["const_bytes"]:,})</text>',
    ]
    for k, entry in enumerate(layers):
        y = 30 + row * k
        out.append(f'<text x="{_fmt(label_w - 6)}" y="{_fmt(y + 11)}" text-anchor="end">'
                   f'{entry["index"]} {_text(entry["kind"])}</text>')
        for cls, x0, value, top, colour in (
            ("macs", x_macs, entry["macs"], max_macs, "#0072B2"),
            ("weights", x_w, entry["weight_bytes"], max_w, "#D55E00"),
        ):
            w = bar_w * value / top
            out.append(
                f'<rect class="bar {cls}" x="{_fmt(x0)}" y="{_fmt(y + 2)}" width="{_fmt(w)}" '
                f'height="{_fmt(row - 4)}" fill="{colour}" data-layer="{entry["index"]}" '
                f'data-value="{value}"><title>{_text(entry["name"])}: {value:,}</title></rect>'
            )
            out.append(f'<text x="{_fmt(x0 + w + 4)}" y="{_fmt(y + 11)}" fill="#333">'
                       f'{value:,}</text>')
    out.append("</svg>")
    return "\n".join(out)


def html_page(data: dict[str, Any]) -> str:
    t = data["totals"]
    rows = "\n".join(
        f'<tr><td>{entry["index"]}</td><td>{_text(entry["kind"])}</td>'
        f'<td>{_text(entry["name"])}</td><td>{entry["macs"]:,}</td>'
        f'<td>{entry["weight_bytes"]:,}</td></tr>'
        for entry in data["layers"]
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>edgekit report: {_text(data["model"])}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: right; }}
td:nth-child(2), td:nth-child(3), th:nth-child(2), th:nth-child(3) {{ text-align: left; }}
rect.tensor:hover {{ stroke-width: 2; }}
</style>
</head>
<body>
<h1>{_text(data["model"])} <small>(target {_text(data["target"])})</small></h1>
<p>{t["layers"]} layers, {t["macs"]:,} MACs, {t["const_bytes"]:,} constant bytes (flash),
arena {t["arena_bytes"]:,} bytes (RAM; liveness lower bound {t["arena_lower_bound_bytes"]:,}).
Hover a rectangle for its tensor, size, offset and live range.</p>
{arena_svg(data)}
<h2>Cost per layer</h2>
{cost_svg(data)}
<h2>Layers</h2>
<table>
<tr><th>#</th><th>op</th><th>name</th><th>MACs</th><th>weight bytes</th></tr>
{rows}
</table>
</body>
</html>
"""


def svg_document(data: dict[str, Any]) -> str:
    """Both charts stacked in one standalone SVG file."""
    a, c = arena_svg(data), cost_svg(data)
    ha = float(re.search(r'height="([\d.]+)"', a).group(1))  # type: ignore[union-attr]
    hc = float(re.search(r'height="([\d.]+)"', c).group(1))  # type: ignore[union-attr]
    wa = float(re.search(r'width="([\d.]+)"', a).group(1))  # type: ignore[union-attr]
    wc = float(re.search(r'width="([\d.]+)"', c).group(1))  # type: ignore[union-attr]
    w, h = max(wa, wc), ha + hc
    # nested <svg> elements keep each chart's own coordinates
    c = c.replace("<svg ", f'<svg y="{_fmt(ha)}" ', 1)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_fmt(w)}" height="{_fmt(h)}" '
            f'viewBox="0 0 {_fmt(w)} {_fmt(h)}">\n{a}\n{c}\n</svg>\n')


# --- PNG (matplotlib, optional) ----------------------------------------------------------------


def png_bytes(data: dict[str, Any], where: str) -> bytes:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle
        from matplotlib.ticker import FuncFormatter, MaxNLocator
    except ImportError:
        raise EdgekitError(
            "a PNG plot needs matplotlib, which is not installed",
            where,
            "write --plot report.html instead (no dependency), or pip install 'edgekit[plot]'",
        ) from None
    import io

    layers = data["layers"]
    n_cols = len(data["columns"])
    fig = plt.figure(figsize=(max(9.0, 0.35 * n_cols + 3), 12))
    ax = fig.add_axes((0.12, 0.5, 0.84, 0.44))
    for e in data["entries"]:
        colour = "#cccccc" if e["kind"] == "scratch" else PALETTE[e["producer"] % len(PALETTE)]
        ax.add_patch(Rectangle((e["first"], e["offset"]), e["last"] - e["first"] + 1, e["bytes"],
                               facecolor=colour, edgecolor="#222", linewidth=0.5,
                               hatch="//" if e["kind"] == "scratch" else None))
    ax.set_xlim(0, n_cols)
    ax.set_ylim(max(data["arena_bytes"], 1), 0)  # offset 0 at the top, as in the HTML
    ax.set_xticks([j + 0.5 for j in range(n_cols)])
    ax.set_xticklabels(data["columns"], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("arena offset (bytes)")
    ax.set_title(f"arena of {data['model']}: {data['arena_bytes']:,} bytes "
                 f"(lower bound {data['lower_bound_bytes']:,})")
    labels = [f"{entry['index']} {entry['kind']}" for entry in layers]
    pos = list(range(len(layers)))
    for k, (key, title, colour) in enumerate((("macs", "MACs", "#0072B2"),
                                             ("weight_bytes", "weight bytes", "#D55E00"))):
        bx = fig.add_axes((0.22 + 0.4 * k, 0.04, 0.33, 0.28))
        bx.barh(pos, [entry[key] for entry in layers], color=colour)
        bx.xaxis.set_major_locator(MaxNLocator(4))
        bx.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        bx.tick_params(axis="x", labelsize=7)
        bx.set_yticks(pos)
        bx.set_yticklabels(labels if k == 0 else [], fontsize=7)
        bx.invert_yaxis()
        bx.set_title(f"{title} per layer", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def plot_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise EdgekitError(
            f"cannot tell the plot format from '{path.suffix or path.name}'",
            str(path),
            "name the file .html (self-contained page), .svg, or .png (needs matplotlib)",
        )
    return fmt


def render_plot(compiled: Compiled, report: dict[str, Any], path: Path) -> bytes:
    """The bytes of the plot file `path` asks for (by its suffix)."""
    fmt = plot_format(path)
    data = arena_schedule(compiled, report)
    if fmt == "html":
        return html_page(data).encode()
    if fmt == "svg":
        return svg_document(data).encode()
    return png_bytes(data, str(path))


def write_plot(compiled: Compiled, report: dict[str, Any], path: Path) -> Path:
    """Render and write atomically: a failed render leaves no file behind."""
    data = render_plot(compiled, report, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            # mkstemp makes the file private; a plot is for sharing, so use the umask's mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise EdgekitError(f"cannot write the plot ({exc.strerror})", str(path)) from None
    return path
