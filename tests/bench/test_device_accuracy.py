"""Accuracy mode on the emulated phone: input packs pushed once, output packs pulled that equal the host's LiteRT bit
for bit, a faulty delegate whose outputs do not, and one clear status per failed cell. Skipped when the emulated
device is not available here."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from blitzmask_deploy.bench import adb
from blitzmask_deploy.bench.adb import AndroidDevice
from blitzmask_deploy.bench.protocol import write_pack
from blitzmask_deploy.core.artifacts import load_manifest, sha256_file
from blitzmask_deploy.data.images import read_image
from blitzmask_deploy.inference.preprocess import preprocess
from tests.support.emulated.faults import NOISE_STD

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
THREADS = 2


@dataclass(frozen=True)
class InputPack:
    """A model file and an input pack for it: the pack's path, sha256 and tensors by name."""

    model: Path
    pack: Path
    sha256: str
    tensors: dict[str, np.ndarray]


@pytest.fixture(scope="module")
def input_packs(tiny_export: Path, synth_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """{precision: InputPack} for fp32 and int8: three val images letterboxed and normalised as the host does it,
    quantised with the file's input scale and zero point for int8."""
    images = sorted((synth_dataset / "images" / "val").glob("*.jpg"))[:3]
    root = tmp_path_factory.mktemp("inputs")
    packs = {}
    for entry in load_manifest(tiny_export).files:
        if entry.format != "tflite" or entry.precision not in ("fp32", "int8"):
            continue
        spec = entry.inputs[0]
        tensors = {}
        for image in images:
            x, _ = preprocess(read_image(image), spec.shape[1])
            if spec.quant is not None:
                x = np.clip(np.round(x / spec.quant.scale) + spec.quant.zero_point, -128, 127)
            tensors[image.stem] = x.astype(spec.dtype)
        pack = root / f"{entry.precision}.pack"
        packs[entry.precision] = InputPack(tiny_export / entry.file, pack, write_pack(pack, 3, iter(tensors.items())),
                                           tensors)  # fmt: skip
    return packs


def _device(emulated_device, apk: Path) -> AndroidDevice:
    dev = AndroidDevice.connect(emulated_device.serial, emulated_device.adb_address, timeout=30, instrument_timeout=120)
    dev.ensure_app(apk)
    return dev


def _host(model: Path, tensors: dict[str, np.ndarray], delegate: str = "xnnpack") -> dict[str, list[np.ndarray]]:
    """The reference: ai-edge-litert on this host with the same inputs, delegate and threads."""
    from ai_edge_litert import interpreter as litert

    kinds = litert.OpResolverType
    resolver = kinds.AUTO if delegate == "xnnpack" else kinds.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = litert.Interpreter(model_path=str(model), num_threads=THREADS, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    (spec,) = interp.get_input_details()
    outputs = {}
    for name, x in tensors.items():
        interp.set_tensor(spec["index"], x)
        interp.invoke()
        outputs[name] = [interp.get_tensor(d["index"]) for d in interp.get_output_details()]
    return outputs


def _run(dev: AndroidDevice, inputs: InputPack, model: Path | None = None, delegate: str = "xnnpack", key: str = "a1"):
    """Push the pack and the model (by default the pack's), run accuracy mode → (result, outputs)."""
    remote = dev.push_inputs(inputs.pack, inputs.sha256)
    model = model or inputs.model
    remote_model = dev.prepare(model, sha256_file(model))
    return dev.run_accuracy(remote_model, remote, cell_key=key * 16, delegate=delegate, threads=THREADS)


def _identical(got: dict[str, list[np.ndarray]], want: dict[str, list[np.ndarray]]) -> bool:
    return list(got) == list(want) and all(
        g.dtype == w.dtype and g.shape == w.shape and g.tobytes() == w.tobytes()
        for stem in want
        for g, w in zip(got[stem], want[stem], strict=True)
    )


@pytest.fixture()
def pushes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The device paths of every input pack the driver pushes from now on."""
    pushed: list[str] = []
    call = adb.guarded_call

    def counting(serial: str, what: str, fn, *args, **kwargs):
        if what == "push inputs":
            pushed.append(args[-1])  # the device path: the last argument of the push
        return call(serial, what, fn, *args, **kwargs)

    monkeypatch.setattr(adb, "guarded_call", counting)
    return pushed


def test_outputs_equal_the_host_bit_for_bit(emulated_device, apk: Path, input_packs: dict, pushes: list[str]) -> None:
    dev = _device(emulated_device, apk)
    for precision, inputs in input_packs.items():
        result, outputs = _run(dev, inputs)
        assert result["status"] == "ok", result["error"]
        assert (result["samples"], result["delegate_applied"], result["fallback"]) == (3, "xnnpack", False)
        assert result["device"]["model"] == "BlitzMask Emulated" and len(result["samples_ms"]) == 3
        assert [t["name"] for t in result["output_tensors"]] == [
            f"serving_default_{head}_output" for head in ("heatmap", "coefficients", "spanning_set", "box")
        ]
        dtypes = {a.dtype.name for stem in outputs for a in outputs[stem]}
        assert dtypes == {"int8" if precision == "int8" else "float32"}
        assert _identical(outputs, _host(inputs.model, inputs.tensors)), precision
    assert len(pushes) == 2  # one pack per input spec


def test_a_pack_already_on_the_device_is_not_pushed_again(
    emulated_device, apk: Path, input_packs: dict, pushes: list[str]
) -> None:
    inputs = input_packs["fp32"]
    remote = _device(emulated_device, apk).push_inputs(inputs.pack, inputs.sha256)  # there from above, or now
    pushes.clear()
    again = AndroidDevice.connect(emulated_device.serial, emulated_device.adb_address, timeout=30)  # a new session
    assert again.push_inputs(inputs.pack, inputs.sha256) == remote and pushes == []
    again.sh(f"echo broken > {remote}")
    fresh = AndroidDevice.connect(emulated_device.serial, emulated_device.adb_address, timeout=30)
    assert fresh.push_inputs(inputs.pack, inputs.sha256) == remote and pushes == [remote]
    assert fresh.remote_sha256(remote) == inputs.sha256


def test_each_failure_is_one_status(
    emulated_device, apk: Path, input_packs: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = _device(emulated_device, apk)
    fp32, int8 = input_packs["fp32"], input_packs["int8"]
    gpu, outputs = _run(dev, fp32, delegate="gpu", key="b2")
    assert (gpu["status"], outputs) == ("unsupported_delegate", {}) and "gpu" in gpu["error"]
    mismatch, outputs = _run(dev, fp32, model=int8.model, key="b3")
    assert mismatch["status"] == "error" and outputs == {}
    first = next(iter(fp32.tensors))
    assert mismatch["error"].startswith(f"{first}: float32 (1, 64, 64, 3) does not match the model's input")
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # the device's runtime is gone
    missing, outputs = _run(dev, fp32, key="b4")
    assert (missing["status"], outputs) == ("runtime_missing", {}) and "ai-edge-litert" in missing["error"]


def test_a_noisy_delegate_is_seen_in_the_outputs(faulty_emulated_device, apk: Path, input_packs: dict) -> None:
    dev = _device(faulty_emulated_device, apk)
    for precision, inputs in input_packs.items():
        result, outputs = _run(dev, inputs)
        assert result["status"] == "ok", result["error"]
        reference = _host(inputs.model, inputs.tensors)
        assert not _identical(outputs, reference), precision
        for stem, heads in reference.items():
            for got, want in zip(outputs[stem], heads, strict=True):
                noise = got.astype(np.float64) - want  # N(0, NOISE_STD · spread), at least a step for int8
                sigma = max(NOISE_STD * want.std(), 1.0 if want.dtype.kind == "i" else 0.0)
                assert got.dtype == want.dtype and np.abs(noise).mean() > 0 and noise.std() < 1.5 * sigma, precision
    fp32 = input_packs["fp32"]
    cpu, outputs = _run(dev, fp32, delegate="cpu", key="c5")  # its cpu delegate zeroes the heatmap only
    assert cpu["status"] == "ok"
    for stem, heads in _host(fp32.model, fp32.tensors, delegate="cpu").items():
        assert not outputs[stem][0].any()
        assert all(np.array_equal(got, want) for got, want in zip(outputs[stem][1:], heads[1:], strict=True))
