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


def _short_name(tensor: str) -> str:
    """A readable label for a converter's tensor name: `model/activation_2/Relu;model/...`
    becomes `activation_2/Relu` (the first fused name, without its model prefix)."""
    first = tensor.split(";", 1)[0]
    parts = first.split("/")
    return "/".join(parts[-2:]) if len(parts) > 2 else first


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
    arena = max(data["arena_bytes"], 1)
    # the cost panels get a fixed height per layer, so a 30-layer model stays readable
    arena_in, bars_in = 5.5, max(2.5, 0.19 * len(layers) + 1.0)
    fig_w = max(9.0, 0.35 * n_cols + 3)
    col_in = fig_w * 0.85 / n_cols  # a schedule column's width in inches, roughly
    fig = plt.figure(figsize=(fig_w, arena_in + bars_in + 2.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=(arena_in + 1.6, bars_in + 0.8))
    ax = top.subplots()
    # a 16-byte tensor in a 50 KiB arena would be a hairline: draw it at least this tall
    min_h = arena * 0.006
    labelled: list[tuple[float, float, float, float]] = []  # label boxes drawn so far
    for e in data["entries"]:
        scratch = e["kind"] == "scratch"
        colour = "#dddddd" if scratch else PALETTE[e["producer"] % len(PALETTE)]
        width = e["last"] - e["first"] + 1
        height = max(e["bytes"], min_h)
        ax.add_patch(Rectangle((e["first"], e["offset"]), width, height, facecolor=colour,
                               edgecolor="#222", linewidth=0.5, alpha=0.9,
                               hatch="//" if scratch else None))
        # name the tensor and its size where there is room, as the HTML page does
        room = int(width * col_in / 0.055)  # characters that fit across it at 7 pt
        if e["bytes"] >= arena * 0.06 and room >= 6:
            label = f"{_short_name(e['tensor'])[:room]}\n{e['bytes']:,} B"
            chars = max(len(line) for line in label.splitlines())
            box = (e["first"], e["first"] + min(width, chars * 0.055 / col_in),
                   e["offset"], e["offset"] + arena * 0.06)
            # an op that works in place shares its input's buffer, so two rectangles (and
            # their labels) meet there: keep the first label rather than print one over another
            if not any(box[0] < b[1] and b[0] < box[1] and box[2] < b[3] and b[2] < box[3]
                       for b in labelled):
                labelled.append(box)
                ax.text(e["first"] + 0.06, e["offset"] + arena * 0.01, label, fontsize=7,
                        va="top", ha="left", clip_on=True)
    ax.set_xlim(0, n_cols)
    ax.set_ylim(arena, 0)  # offset 0 at the top, as in the HTML
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xticks([j + 0.5 for j in range(n_cols)])
    ax.set_xticklabels(data["columns"], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("arena offset (bytes)")
    ax.set_xlabel("schedule: a tensor spans the ops during which it is live; where two overlap "
                  "at one op, that op works in place", fontsize=8)
    ax.set_title(f"arena of {data['model']} ({data['target']}): {data['arena_bytes']:,} bytes, "
                 f"liveness lower bound {data['lower_bound_bytes']:,}", fontsize=11)
    if any(e["kind"] == "scratch" for e in data["entries"]):
        ax.legend(handles=[Rectangle((0, 0), 1, 1, facecolor="#dddddd", edgecolor="#222",
                                     hatch="//", label="kernel scratch")],
                  loc="lower right", fontsize=7)
    labels = [f"{entry['index']} {entry['kind']}" for entry in layers]
    pos = list(range(len(layers)))
    totals = {"macs": sum(e["macs"] for e in layers),
              "weight_bytes": sum(e["weight_bytes"] for e in layers)}
    axes = bottom.subplots(1, 2, sharey=True)
    for bx, (key, title, colour) in zip(axes, (("macs", "MACs", "#0072B2"),
                                               ("weight_bytes", "weight bytes", "#D55E00")),
                                        strict=True):
        bx.barh(pos, [entry[key] for entry in layers], color=colour)
        bx.xaxis.set_major_locator(MaxNLocator(4))
        bx.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        bx.tick_params(axis="x", labelsize=7)
        bx.grid(axis="x", color="#e4e4e4", linewidth=0.6)
        bx.set_axisbelow(True)
        bx.set_title(f"{title} per layer (total {totals[key]:,})", fontsize=9)
    axes[0].set_yticks(pos)
    axes[0].set_yticklabels(labels, fontsize=7)
    axes[0].invert_yaxis()
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
