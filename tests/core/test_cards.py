"""Model cards in models/<variant>/: typed, strict, and the single definition of each variant."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from blitzmask_deploy.core.cards import (
    MODELS_DIR,
    MeasuredPerf,
    NumericsCard,
    append_measured,
    load_model_card,
    load_numerics,
    load_numerics_file,
    load_perf,
)
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.modeling.registry import list_variants, variant_config


@pytest.fixture()
def cards(tmp_path: Path) -> Path:
    """A writable copy of the repository's models/ directory."""
    root = tmp_path / "models"
    shutil.copytree(MODELS_DIR, root)
    return root


def test_a_card_is_the_whole_definition_of_a_variant(cards: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import blitzmask_deploy.core.cards as card_module
    from blitzmask_deploy.modeling import registry

    wide = cards / "blitzmask-b0-wide"
    shutil.copytree(cards / "blitzmask-b0", wide)
    text = (wide / "model.yaml").read_text().replace("variant: blitzmask-b0", "variant: blitzmask-b0-wide")
    (wide / "model.yaml").write_text(text.replace("neck_channels: 64", "neck_channels: 128"))
    monkeypatch.setattr(card_module, "MODELS_DIR", cards)
    registry._variants.cache_clear()
    try:
        assert "blitzmask-b0-wide" in list_variants()
        assert variant_config("blitzmask-b0-wide").neck_channels == 128
        assert (
            variant_config("blitzmask-b0-wide").to_dict() == load_model_card("blitzmask-b0-wide", cards).architecture()
        )
    finally:
        registry._variants.cache_clear()


def test_variants_are_listed_smallest_backbone_first() -> None:
    from blitzmask_deploy.modeling.config import BACKBONES

    order = [BACKBONES.index(variant_config(name).backbone) for name in list_variants()]
    assert order == sorted(order) and len(order) == len(set(order))


@pytest.mark.parametrize("name", list_variants())
def test_every_shipped_card_has_a_budget_for_every_format(name: str) -> None:
    numerics = load_numerics(name)
    for fmt in ("tflite-fp32", "tflite-fp16", "tflite-int8", "onnx-fp32"):
        assert 0 <= numerics.max_drop_fraction(fmt) < 0.05
    load_perf(name)  # loads and validates


def test_budgets_are_ap_points_looked_up_by_file_name() -> None:
    numerics = NumericsCard(ap_drop_max={"fp16": 0.1, "int8": 0.5, "onnx": 0.05}, parity_max_abs={"fp32": 1e-4})
    assert numerics.max_drop_fraction("fp16") == pytest.approx(0.001)
    assert numerics.max_drop_fraction("tflite-int8") == pytest.approx(0.005)
    assert numerics.max_drop_fraction("onnx-fp32") == pytest.approx(0.0005)
    assert numerics.max_parity("tflite-fp32") == pytest.approx(1e-4)
    with pytest.raises(BadInput, match="parity_max_abs budget for 'int8'"):
        numerics.max_parity("int8")


def test_append_measured_keeps_the_paper_figures(cards: Path) -> None:
    entry = MeasuredPerf(date="2026-11-25", device="host", delegate="xnnpack", precision="int8", p50_ms=12.5)
    append_measured("blitzmask-b4", entry, root=cards)
    append_measured("blitzmask-b4", entry.model_copy(update={"precision": "fp32"}), root=cards)
    perf = load_perf("blitzmask-b4", root=cards)
    assert [m.precision for m in perf.measured] == ["int8", "fp32"]
    assert perf.paper == load_perf("blitzmask-b4").paper
    assert load_perf("blitzmask-b4").measured == []  # the repository copy is untouched


@pytest.mark.parametrize(
    ("file", "edit", "needle"),
    [
        ("model.yaml", lambda t: t + "dropout: 0.1\n", "dropout"),
        ("model.yaml", lambda t: t.replace("input_size: 320", "input_size: big"), "input_size"),
        ("model.yaml", lambda t: t.replace("variant: blitzmask-b4", "variant: blitzmask-b0"), "names variant"),
        ("perf.yaml", lambda t: t.replace("measured: []", "measured: [{date: x, device: y, speed: 3}]"), "measured"),
        ("perf.yaml", lambda t: t.replace("precision: int8", "precision: int4"), "precision"),
        ("numerics.yaml", lambda t: t.replace("int8: 0.5", "int4: 0.5"), "int4"),
        ("numerics.yaml", lambda t: t.replace("fp16: 0.1", "fp16: -0.1"), ">= 0"),
        ("numerics.yaml", lambda t: t + "  bad: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_cards_are_one_line_bad_input(cards: Path, file: str, edit, needle: str) -> None:
    path = cards / "blitzmask-b4" / file
    path.write_text(edit(path.read_text()))
    loader = {"model.yaml": load_model_card, "perf.yaml": load_perf, "numerics.yaml": load_numerics}[file]
    with pytest.raises(BadInput, match=needle) as err:
        loader("blitzmask-b4", root=cards)
    message = str(err.value)
    assert "\n" not in message and str(path) in message


def test_unknown_variant_lists_the_cards() -> None:
    with pytest.raises(BadInput, match="have blitzmask-b0"):
        load_numerics("blitzmask-b7")


def test_numerics_file_by_path(cards: Path) -> None:
    path = cards / "blitzmask-tiny" / "numerics.yaml"
    assert load_numerics_file(path) == load_numerics("blitzmask-tiny")
    path.write_text(path.read_text() + "latency_p90_ms_max: 3\n")
    with pytest.raises(BadInput, match="latency_p90_ms_max"):
        load_numerics_file(path)
