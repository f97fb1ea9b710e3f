"""The host side of the emulated device's shims: `am instrument`, `pm` and `dumpsys` inside the chroot forward
their arguments through a spool directory (see rootfs/shims/hostcall) and this worker answers.

`am instrument` runs the benchmark protocol on the host: the runner (by default
`bench.local.run_local_benchmark`) gets the model's host path, the device's fake thermal / cpufreq trees and the
device record from its build.prop; the shim prints the standard instrumentation lines and the result JSON is
written to the `-e out` path inside the device. In accuracy mode (`-e mode accuracy`) the accuracy runner (by
default `bench.local.run_local_accuracy`) reads the input pack and writes the output pack inside the device,
through the fault of the requested delegate when one is switched on (faults.py).
"""

from __future__ import annotations

import json
import posixpath
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from blitzmask_deploy.bench.protocol import MODES, PACKAGE, base_accuracy_result, base_result
from tests.support.emulated.apk import ApkError, read_apk_info
from tests.support.emulated.faults import check_faults, run_with_fault

Runner = Callable[..., dict]
SYSTEM_PACKAGES = {"android": 34, "com.android.shell": 34}
_INSTRUMENT_FLOATS = ("cooldown_c", "sustained_s", "target_fps")
_INSTRUMENT_INTS = ("threads", "warmup", "runs")


def read_build_prop(path: Path) -> dict[str, str]:
    """key=value lines of a build.prop."""
    props = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            props[key] = value
    return props


def device_record(props: dict[str, str]) -> dict:
    """The protocol's `device` record of a device with these properties."""
    sdk = props.get("ro.build.version.sdk", "")
    return {
        "fingerprint": props.get("ro.build.fingerprint"),
        "model": props.get("ro.product.model"),
        "manufacturer": props.get("ro.product.manufacturer"),
        "soc": props.get("ro.soc.model") or props.get("ro.board.platform"),
        "android": props.get("ro.build.version.release"),
        "sdk": int(sdk) if sdk.isdigit() else None,
        "abi": props.get("ro.product.cpu.abi"),
    }


class DeviceServices:
    """Answers `am`, `pm` and `dumpsys` for one device whose writable tree (/data, /sys) is `state`.

    `runner` runs timing mode (run_local_benchmark's signature), `accuracy_runner` accuracy mode
    (run_local_accuracy's); `faults` maps a delegate to a fault kind of faults.py."""

    def __init__(
        self,
        state: Path,
        props: dict[str, str],
        runner: Runner,
        *,
        accuracy_runner: Runner | None = None,
        faults: dict[str, str] | None = None,
    ) -> None:
        self.state = state
        self.props = props
        self.runner = runner
        self.accuracy_runner = accuracy_runner or _local_accuracy_runner
        self.faults = check_faults(faults)
        self._packages_file = state / "data" / "system" / "packages.json"
        self._lock = threading.Lock()

    def host_path(self, path: str, cwd: str = "/") -> Path:
        """Where a device path under /data, /sys or /tmp lives on the host."""
        full = posixpath.normpath(posixpath.join(cwd, path))
        if full.split("/")[1] not in ("data", "sys", "tmp"):
            raise ValueError(f"{full}: only /data, /sys and /tmp are reachable from the host")
        host = self.state.joinpath(*full.split("/")[1:])
        if not host.resolve().is_relative_to(self.state.resolve()):
            raise ValueError(f"{full}: a link leads out of the device")
        return host

    def handle(self, cwd: str, argv: list[str]) -> tuple[str, int]:
        """(stdout, exit code) of one shim call."""
        commands = {"am": self._am, "pm": self._pm, "dumpsys": self._dumpsys}
        if not argv or argv[0] not in commands:
            return f"unknown host call {argv[:1]}\n", 127
        return commands[argv[0]](cwd, argv[1:])

    # --- packages -------------------------------------------------------------------------------------------
    def packages(self) -> dict[str, dict]:
        """Installed packages: {name: {"version_code", "version_name", "path"}}."""
        if not self._packages_file.exists():
            return {}
        return json.loads(self._packages_file.read_text())

    def _save_packages(self, packages: dict[str, dict]) -> None:
        self._packages_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._packages_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(packages, indent=1, sort_keys=True))
        tmp.replace(self._packages_file)

    def _pm(self, cwd: str, args: list[str]) -> tuple[str, int]:
        sub, rest = (args[0], args[1:]) if args else ("", [])
        if sub == "install":
            return self._pm_install(cwd, rest)
        if sub == "list" and rest[:1] == ["packages"]:
            return self._pm_list(rest[1:])
        if sub == "path" and rest:
            pkg = self.packages().get(rest[-1])
            return (f"package:{pkg['path']}\n", 0) if pkg else ("", 1)
        if sub == "uninstall" and rest:
            with self._lock:
                packages = self.packages()
                if packages.pop(rest[-1], None) is None:
                    return "Failure [DELETE_FAILED_INTERNAL_ERROR]\n", 1
                shutil.rmtree(self.state / "data" / "app" / rest[-1], ignore_errors=True)
                self._save_packages(packages)
            return "Success\n", 0
        return f"pm: unsupported command: {' '.join(args)}\n", 1

    def _pm_install(self, cwd: str, args: list[str]) -> tuple[str, int]:
        files = [a for a in args if not a.startswith("-")]
        if not files:
            return "Error: no package specified\n", 1
        try:
            apk = self.host_path(files[-1], cwd)
            info = read_apk_info(apk)
        except (ValueError, ApkError) as err:
            return f"Failure [INSTALL_FAILED_INVALID_APK: {err}]\n", 1
        with self._lock:
            packages = self.packages()
            old = packages.get(info.package)
            if old and old["version_code"] > info.version_code and "-d" not in args:
                return "Failure [INSTALL_FAILED_VERSION_DOWNGRADE]\n", 1
            dest = self.state / "data" / "app" / info.package / "base.apk"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(apk, dest)
            packages[info.package] = {
                "version_code": info.version_code,
                "version_name": info.version_name,
                "path": f"/data/app/{info.package}/base.apk",
            }
            self._save_packages(packages)
        return "Success\n", 0

    def _pm_list(self, args: list[str]) -> tuple[str, int]:
        show_code = "--show-versioncode" in args
        filters = [a for a in args if not a.startswith("-")]
        rows = {name: code for name, code in SYSTEM_PACKAGES.items()}
        rows.update({name: pkg["version_code"] for name, pkg in self.packages().items()})
        lines = []
        for name in sorted(rows):
            if filters and filters[0] not in name:
                continue
            lines.append(f"package:{name}" + (f" versionCode:{rows[name]}" if show_code else ""))
        return "".join(line + "\n" for line in lines), 0

    # --- dumpsys --------------------------------------------------------------------------------------------
    def _dumpsys(self, cwd: str, args: list[str]) -> tuple[str, int]:
        if args[:1] == ["battery"]:
            return self._battery(), 0
        if args[:1] == ["package"] and len(args) > 1:
            pkg = self.packages().get(args[1])
            if not pkg:
                return f"Unable to find package: {args[1]}\n", 0
            return (
                "Packages:\n"
                f"  Package [{args[1]}] (0):\n"
                f"    codePath=/data/app/{args[1]}\n"
                f"    versionCode={pkg['version_code']} minSdk=21 targetSdk=34\n"
                f"    versionName={pkg['version_name']}\n"
            ), 0
        return f"Can't find service: {' '.join(args)}\n", 0

    def _battery(self) -> str:
        temp = 250
        for zone in sorted((self.state / "sys" / "class" / "thermal").glob("thermal_zone*")):
            if (zone / "type").read_text().strip() == "battery":
                temp = int((zone / "temp").read_text().strip()) // 100
        rows = [
            ("AC powered", "false"),
            ("USB powered", "true"),
            ("Wireless powered", "false"),
            ("status", "2"),
            ("health", "2"),
            ("present", "true"),
            ("level", "100"),
            ("scale", "100"),
            ("voltage", "4200"),
            ("temperature", str(temp)),
            ("technology", "Li-ion"),
        ]
        return "Current Battery Service state:\n" + "".join(f"  {k}: {v}\n" for k, v in rows)

    # --- am instrument --------------------------------------------------------------------------------------
    def _am(self, cwd: str, args: list[str]) -> tuple[str, int]:
        if args[:1] == ["force-stop"]:
            return "", 0
        if args[:1] != ["instrument"]:
            return f"am: unsupported command: {' '.join(args)}\n", 1
        extras, component = _parse_instrument(args[1:])
        package = component.partition("/")[0]
        if package != PACKAGE or package not in self.packages():
            full = component.replace("/.", f"/{package}.")
            return (
                "INSTRUMENTATION_STATUS: id=ActivityManagerService\n"
                f"INSTRUMENTATION_STATUS: Error=Unable to find instrumentation info for: ComponentInfo{{{full}}}\n"
                "INSTRUMENTATION_STATUS_CODE: -1\n"
                f"android.util.AndroidException: INSTRUMENTATION_FAILED: {full}\n"
            ), 1
        result = self._instrument(cwd, extras)
        line = json.dumps(result, separators=(",", ":"))
        if "out" in extras:
            out = self.host_path(extras["out"], cwd)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(line + "\n")
        return (
            f"INSTRUMENTATION_STATUS: blitzmask_result={line}\n"
            "INSTRUMENTATION_STATUS_CODE: 0\n"
            f"INSTRUMENTATION_RESULT: status={result['status']}\n"
            "INSTRUMENTATION_CODE: -1\n"
        ), 0

    def _instrument(self, cwd: str, extras: dict[str, str]) -> dict:
        mode = extras.get("mode", "timing").strip().lower()
        if mode not in MODES:
            return self._error(extras.get("model", ""), {}, f"mode must be one of {list(MODES)}, got '{mode}'")
        if mode == "accuracy":
            return self._accuracy(cwd, extras)
        model = extras.get("model", "")
        kwargs: dict = {"delegate": extras.get("delegate", "cpu")}
        try:
            kwargs.update({k: int(extras[k]) for k in _INSTRUMENT_INTS if k in extras})
            kwargs.update({k: float(extras[k]) for k in _INSTRUMENT_FLOATS if k in extras})
            host_model = self.host_path(model, cwd)
        except ValueError as err:
            return self._error(model, kwargs, f"bad argument: {err}")
        if not host_model.is_file():
            return self._error(model, kwargs, f"model not found: {model}")
        sys_root = self.state / "sys"
        try:
            result = self.runner(
                host_model,
                thermal_root=sys_root / "class" / "thermal",
                cpufreq_root=sys_root / "devices" / "system" / "cpu",
                device=device_record(self.props),
                **kwargs,
            )
        except Exception as err:  # the app reports a crash of its runtime as an error result
            return self._error(model, kwargs, f"{type(err).__name__}: {err}".splitlines()[0])
        result["model"] = model
        return result

    def _error(self, model: str, kwargs: dict, message: str) -> dict:
        result = base_result(
            model,
            delegate=kwargs.get("delegate", "cpu"),
            threads=kwargs.get("threads", 4),
            warmup=kwargs.get("warmup", 10),
            runs=kwargs.get("runs", 100),
        )
        result.update(error=message, device=device_record(self.props))
        return result

    def _accuracy(self, cwd: str, extras: dict[str, str]) -> dict:
        paths = {key: extras.get(key, "") for key in ("model", "inputs", "outputs")}
        delegate = extras.get("delegate", "xnnpack")
        result = base_accuracy_result(paths["model"], inputs=paths["inputs"], outputs=paths["outputs"],
                                      delegate=delegate, threads=None)  # fmt: skip
        result["device"] = device_record(self.props)
        try:
            result["threads"] = threads = int(extras.get("threads", 4))
            missing = [f"-e {key}" for key, value in paths.items() if not value]
            if missing:
                raise ValueError(f"missing argument {missing[0]}")
            host = {key: self.host_path(value, cwd) for key, value in paths.items()}
        except ValueError as err:
            result["error"] = f"bad argument: {err}"
            return result
        if not host["model"].is_file():
            result["error"] = f"model not found or unreadable: {paths['model']}"
            return result
        kwargs = {"delegate": delegate, "threads": threads, "device": result["device"]}
        try:
            ran = run_with_fault(self.accuracy_runner, self.faults.get(delegate), host["model"], host["inputs"],
                                 host["outputs"], **kwargs)  # fmt: skip
        except Exception as err:  # the app reports a crash of its runtime as an error result
            result["error"] = f"{type(err).__name__}: {err}".splitlines()[0]
            return result
        return {**ran, **paths, "error": _device_paths(ran["error"], host, paths)}


def _device_paths(text: str | None, host: dict[str, Path], device: dict[str, str]) -> str | None:
    """`text` with the host paths of the device's files written as the device sees them."""
    for key, path in host.items():
        text = text.replace(str(path), device[key]) if text else text
    return text


def _local_accuracy_runner(model: Path, inputs: Path, outputs: Path, **kwargs: object) -> dict:
    from blitzmask_deploy.bench.local import run_local_accuracy

    return run_local_accuracy(model, inputs, outputs, **kwargs)  # type: ignore[arg-type]


def _parse_instrument(args: list[str]) -> tuple[dict[str, str], str]:
    extras: dict[str, str] = {}
    positional = []
    i = 0
    while i < len(args):
        if args[i] == "-e":
            key, value = [*args[i + 1 : i + 3], "", ""][:2]
            extras[key] = value
            i += 3
        elif args[i] in ("--user", "-p", "--abi"):
            i += 2
        elif args[i].startswith("-"):
            i += 1
        else:
            positional.append(args[i])
            i += 1
    return extras, positional[-1] if positional else ""


class SpoolWorker:
    """Polls the shims' spool directory and answers each request on its own thread."""

    def __init__(self, spool: Path, services: DeviceServices, poll_s: float = 0.02) -> None:
        self.spool = spool
        self.services = services
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="emulated-device-spool", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            for req in sorted(self.spool.glob("*.req")):
                taken = req.with_suffix(".taken")
                try:
                    req.rename(taken)
                except OSError:
                    continue
                threading.Thread(target=self._answer, args=(taken,), daemon=True).start()
            time.sleep(self.poll_s)

    def _answer(self, taken: Path) -> None:
        cwd, _, rest = taken.read_bytes().partition(b"\n")
        argv = [a.decode("utf-8", "surrogateescape") for a in rest.split(b"\0")[:-1]]
        try:
            out, code = self.services.handle(cwd.decode("utf-8", "surrogateescape") or "/", argv)
        except Exception as err:  # never leave a shim waiting
            out, code = f"host worker failed: {type(err).__name__}: {err}\n", 1
        taken.with_suffix(".out").write_text(out)
        rc_tmp = taken.with_suffix(".rctmp")
        rc_tmp.write_text(f"{code}\n")
        rc_tmp.replace(taken.with_suffix(".rc"))
        taken.unlink(missing_ok=True)
