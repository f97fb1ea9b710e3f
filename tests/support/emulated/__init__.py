"""The emulated Android device: a real adbd in a chroot behind a private adb server (docs/emulated-device.md)."""
