"""The test rig: the emulated adb device, perturbed predictions, small models."""
