import pytest
from test_driver_emulated import apk, emu, test_cli_unplug_exits_1_and_rerun_finishes  # noqa: F401
pytest_plugins = ["fixtures_models"]

@pytest.mark.parametrize("i", range(10))
def test_rep(i, emu, apk, bench_tflite, tmp_path):
    test_cli_unplug_exits_1_and_rerun_finishes(emu, apk, bench_tflite, tmp_path)
