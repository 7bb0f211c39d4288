"""The issue-level spellings of the FPGA and spiking workflows reach their subcommands."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.cli import main, route
from edgekit.ir import serialize
from edgekit.models.dscnn import build_tiny_mlp


@pytest.fixture(scope="module")
def spiking(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgekit.snn.importers import from_snn_delays
    from edgekit.snn.quantize import quantize
    from edgekit.snn.synthetic import SHD_CONFIG, random_state_dict

    cfg = {**SHD_CONFIG, "n_inputs": 12, "n_hidden_layers": 1, "n_hidden_neurons": 16,
           "n_outputs": 4, "max_delay": 5}  # fmt: skip
    path = tmp_path_factory.mktemp("snn") / "shd.ekir"
    serialize.save(quantize(from_snn_delays(random_state_dict(cfg, seed=1), cfg), "shd"), path)
    return path


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mlp") / "mlp.tflite"
    path.write_bytes(build_tiny_mlp(seed=3))
    return path


def test_route_rewrites_only_the_documented_forms(spiking: Path) -> None:
    assert route(["generate", "m.tflite", "--target", "hls-vitis", "-o", "x"]) == [
        "hls", "generate", "m.tflite", "-o", "x"]  # fmt: skip
    assert route(["report", "--target=hls-vitis", "m.tflite"]) == ["hls", "report", "m.tflite"]
    assert route(["verify", "m.tflite", "--target", "cortex-m4"]) == [
        "verify", "m.tflite", "--target", "cortex-m4"]  # fmt: skip
    # bench has no HLS form: it stays as it is and the target lookup reports the name
    assert route(["bench", "m.tflite", "--target", "hls-vitis"])[0] == "bench"
    assert route(["convert", "a.pt", "--config", "c.json"]) == [
        "snn", "convert", "a.pt", "--config", "c.json"]  # fmt: skip
    assert route(["generate", "x.ekir", "--snn-kernel", "gather"])[:2] == ["snn", "generate"]
    assert route(["bench", str(spiking), "--target", "cortex-m4"])[:2] == ["snn", "bench"]
    # a missing or non-spiking .ekir is left to the ordinary command and its error
    assert route(["generate", "missing.ekir"]) == ["generate", "missing.ekir"]
    assert route([]) == []


def test_spiking_workflow_with_the_top_level_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    import numpy as np

    from edgekit.snn.synthetic import SHD_CONFIG, random_state_dict

    cfg = {**SHD_CONFIG, "n_inputs": 12, "n_hidden_layers": 1, "n_hidden_neurons": 16,
           "n_outputs": 4, "max_delay": 5}  # fmt: skip
    np.savez(tmp_path / "ckpt.npz", **random_state_dict(cfg, seed=1))
    (tmp_path / "model.json").write_text(json.dumps(cfg))
    shd = tmp_path / "shd.ekir"
    assert main(["convert", str(tmp_path / "ckpt.npz"), "--config", str(tmp_path / "model.json"),
                 "-o", str(shd), "--samples", "2", "--steps", "20"]) == 0  # fmt: skip
    trains = (np.random.default_rng(0).random((3, 30, 12)) < 0.1).astype(np.uint8)
    np.savez(tmp_path / "spikes.npz", spikes=trains)
    out = tmp_path / "q.ekir"
    capsys.readouterr()
    assert main(["quantize", str(shd), "--calib", str(tmp_path / "spikes.npz"),
                 "-o", str(out)]) == 0  # fmt: skip
    assert "<- chosen" in capsys.readouterr().out  # quantize reached snn quantize
    build = tmp_path / "build"
    assert main(["generate", str(out), "--target", "host", "--snn-kernel", "auto",
                 "-o", str(build)]) == 0  # fmt: skip
    assert "shd_step(" in (build / "shd.h").read_text()
    assert main(["verify", str(out), "--steps", "40"]) == 0
    assert "bit-exact" in capsys.readouterr().out


def test_convert_refuses_a_feed_forward_model(
    mlp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.ekir"
    assert main(["convert", str(mlp), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "spiking networks" in err and "feed-forward" in err and "Traceback" not in err
    assert not out.exists()


def test_hls_target_on_the_main_commands(
    mlp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(mlp), "--target", "hls-vitis", "--json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["layers"] and report["fits"] is True
    out = tmp_path / "hls"
    assert main(["generate", str(mlp), "--target", "hls-vitis", "-o", str(out)]) == 0
    assert (out / "run_hls.tcl").is_file()
    assert main(["verify", str(mlp), "--target=hls-vitis", "--samples", "8"]) == 0
    assert "bit-exact" in capsys.readouterr().out
