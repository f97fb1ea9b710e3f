"""Which devices there are: `local` plus every device of every reachable adb server (`blitzmask devices`), and
opening the ones a command names (`--device all|local|SERIAL`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from blitzmask_deploy.bench.adb import AndroidDevice, default_adb_server, guarded_call, parse_server, server_reachable
from blitzmask_deploy.bench.device import Device
from blitzmask_deploy.bench.errors import DeviceError
from blitzmask_deploy.bench.local import LOCAL_SERIAL, LocalDevice, host_device_info
from blitzmask_deploy.core.errors import BadInput


@dataclass
class DeviceEntry:
    """One row of `blitzmask devices`."""

    serial: str
    kind: str
    state: str
    model: str | None = None
    soc: str | None = None
    android: str | None = None
    abi: str | None = None
    adb_server: str | None = None

    def to_json(self) -> dict:
        """The JSON object of this row."""
        return asdict(self)


def check_servers(servers: list[str] | None) -> list[str] | None:
    """`servers` (the --adb values) after checking each is HOST:PORT with a host name or address that can be looked
    up (no spaces, NUL or stray brackets; IDNA-encodable); BadInput naming the first that is not."""
    for address in servers or []:
        host, _ = parse_server(address)
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            usable = bool(bare) and not any(c.isspace() or c in "[]\0/" for c in bare) and bool(bare.encode("idna"))
        except UnicodeError:
            usable = False
        if not usable:
            raise BadInput(f"--adb expects HOST:PORT with a usable host name or address, got {address!r}")
    return servers


def _adb_entries(server: str, with_info: bool, timeout: float) -> list[DeviceEntry]:
    import adbutils

    host, port = parse_server(server)
    client = adbutils.AdbClient(host=host, port=port, socket_timeout=timeout)
    rows = guarded_call(server, "host:devices", client.list)
    entries = []
    for row in rows:
        entry = DeviceEntry(serial=row.serial, kind="adb", state=row.state, adb_server=server)
        if with_info and row.state == "device":
            try:
                info = AndroidDevice(client.device(row.serial), adb_server=server).info()
                entry.model, entry.soc, entry.android, entry.abi = (info[k] for k in ("model", "soc", "android", "abi"))
            except DeviceError:
                entry.state = "unresponsive"
        entries.append(entry)
    return entries


def list_devices(
    servers: list[str] | None = None, *, with_info: bool = True, timeout: float = 10.0
) -> tuple[list[DeviceEntry], list[str]]:
    """(`local` + every device of every reachable adb server, notes about servers that could not be used)."""
    check_servers(servers)
    host = host_device_info()
    entries = [DeviceEntry(LOCAL_SERIAL, "local", "device", host["model"], host["soc"], None, host["abi"])]
    notes = []
    for server in servers or [default_adb_server()]:
        if not server_reachable(server):
            notes.append(f"no adb server at {server}: its devices are not listed")
            continue
        try:
            entries += _adb_entries(server, with_info, timeout)
        except DeviceError as err:
            notes.append(f"adb server at {server} failed: {err}")
    return entries, notes


def open_devices(
    wanted: list[str], servers: list[str] | None = None, *, instrument_timeout: float = 600.0
) -> tuple[list[Device], list[str]]:
    """Resolve --device values ('all', 'local' or serials) into devices; BadInput for an unknown serial."""
    check_servers(servers)
    if not wanted:
        raise BadInput("--device names no device (give 'all', 'local' or serials)")
    if set(wanted) == {LOCAL_SERIAL}:
        return [LocalDevice()], []
    entries, notes = list_devices(servers, with_info=False)
    known: dict[str, DeviceEntry] = {}
    for entry in entries:  # a serial listed by two adb servers is taken from the first
        known.setdefault(entry.serial, entry)
    ready = {serial: e for serial, e in known.items() if e.state == "device"}
    serials: list[str] = []
    for name in wanted:
        if name == "all":
            serials += [s for s in ready if s not in serials]
        elif name not in known:
            raise BadInput(f"no device '{name}' (have {', '.join(known)})")
        elif name not in ready:
            raise BadInput(f"device '{name}' is {known[name].state}, not ready")
        elif name not in serials:
            serials.append(name)
    devices: list[Device] = []
    for serial in serials:
        entry = ready[serial]
        if entry.kind == "local":
            devices.append(LocalDevice())
        else:
            devices.append(AndroidDevice.connect(serial, entry.adb_server or "", instrument_timeout=instrument_timeout))
    return devices, notes
