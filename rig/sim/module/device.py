"""The whole module as its host sees it: a UART speaking the BC95/BC28 AT dialect (PROTOCOLS.md).

Commands are processed one at a time after the module's processing delay; replies, URCs and the boot
banner go out on the UART in the manuals' framing. The host is the meter's MCU or, on a bare-module
bench, the rig itself through a pseudo-terminal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass

import simpy

from rig.profiles.device_sim import ModuleSim
from rig.sim.module import at
from rig.sim.module.lwm2m import OBSERVE_WAIT_S, Lwm2mClient
from rig.sim.module.modem import Modem
from rig.sim.module.timers import decode_t3324, decode_t3412, encode_t3324, encode_t3412
from rig.sim.network import Network
from rig.sim.power import DevicePower
from rig.sim.world import World

log = logging.getLogger(__name__)

NCONFIG_KEYS = [
    "AUTOCONNECT", "CR_0354_0338_SCRAMBLING", "CR_0859_SI_AVOID", "COMBINE_ATTACH", "CELL_RESELECTION",
    "ENABLE_BIP", "MULTITONE", "NAS_SIM_POWER_SAVING_ENABLE",
]
NCONFIG_NUMERIC = {"BARRING_RELEASE_DELAY": 64, "RELEASE_VERSION": 13, "SYNC_TIME_PERIOD": 0}
BANNER = ["Boot: Unsigned", "Security B.. Verified", "Protocol A.. Verified", "Apps A...... Verified", ""]
BANDS = "5,8,3,28,20,1"
CDP_DEFAULT_PORT = 5683
CME_BAD_PARAMETERS = 50
CME_NOT_CONFIGURED = 512
CME_NOT_REGISTERED = 513
CME_WRONG_STATE = 516
CME_MINIMUM_FUNCTION = 524
QLWUL_CONFIRMABLE = 0x0100
QLWUL_RELEASE_AFTER_SEND = 0x0001
QLWUL_RELEASE_AFTER_REPLY = 0x0010
NSOSTF_RELEASE = 0x200
NSOSTF_RELEASE_AFTER_REPLY = 0x400
STATUS_SUCCESS, STATUS_TIMEOUT = 4, 3


class CommandError(Exception):
    """Ends a command with `+CME ERROR: <code>`."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


@dataclass
class Socket:
    local_port: int
    peer: tuple[str, int] | None = None
    received: list[tuple[tuple[str, int], bytes]] | None = None
    release_on_reply: bool = False


class NbiotModule:
    """A Boudica-class module: modem, LwM2M client, UDP sockets and the AT interpreter."""

    def __init__(self, world: World, network: Network, power: DevicePower, settings: ModuleSim, imei: str):
        self.world = world
        self.env = world.env
        self.settings = settings
        self.imei = imei
        self.host_write: Callable[[bytes], None] = lambda data: None
        self.modem = Modem(world, network, power, settings, imei, self._urc)
        self.modem.on_boot = self._on_boot
        self.modem.on_downlink_datagram = self._on_downlink_datagram
        self.modem.on_registered.append(self._on_attached)
        self.lwm2m = Lwm2mClient(self.env, world.rng, imei, self._transmit_to_server, self._on_lwm2m_downlink)
        self.sockets: dict[int, Socket] = {}
        self.nnmi_mode = 1
        self.nsmi_mode = 0
        self.sent = self.send_errors = 0
        self.received = 0
        self.buffered: list[bytes] = []
        self._release_on_reply = False
        self._line = bytearray()
        self._queue = simpy.Store(self.env)
        self.env.process(self._interpreter())

    # ---- UART ----------------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Bytes from the host: CR ends a command line; nothing is heard while the module is off."""
        if not (self.modem.powered and self.modem.booted):
            self._line.clear()
            return
        for byte in data:
            if byte == 13:
                line = self._line.decode("latin-1")
                self._line.clear()
                if line.strip():
                    self._queue.put(line)
            elif byte != 10 and len(self._line) <= at.MAX_LINE_BYTES:
                self._line.append(byte)

    def _send(self, data: bytes) -> None:
        if self.modem.powered:
            self.host_write(data)

    def _urc(self, line: str) -> None:
        self._send(at.urc(line))

    def _on_boot(self, cause: str) -> None:
        self.lwm2m.reset()
        self.sockets.clear()
        self._send(at.frame(*BANNER, cause, "Neul"))

    # ---- power (the host's switch or the supply) -----------------------------------------------
    def power_on(self) -> None:
        self.modem.power_on()

    def power_off(self) -> None:
        self.modem.power_off()
        self._line.clear()
        self._queue.items.clear()

    # ---- interpreter ---------------------------------------------------------------------------
    def _interpreter(self) -> Generator[simpy.Event, None, None]:
        while True:
            line = yield self._queue.get()
            command = at.parse(line)
            if command is None:
                continue
            yield self.env.timeout(self.settings.at_response_delay_s)
            if not self.modem.powered:
                continue
            try:
                handler = self._handlers().get((command.name, command.kind))
                if handler is None:
                    reply = at.frame(final="ERROR")
                else:
                    result = handler(command.args)
                    if isinstance(result, Generator):
                        result = yield from result
                    reply = result
            except CommandError as error:
                reply = at.cme_error(error.code)
            except (ValueError, IndexError):
                reply = at.cme_error(CME_BAD_PARAMETERS)
            except Exception:  # noqa: BLE001 - last resort: a bad command must not stop the module (or the twin)
                log.exception("AT command %r raised", command.text[:80])
                reply = at.frame(final="ERROR")
            if reply:
                self._send(reply)

    def _handlers(self) -> dict[tuple[str, str], Callable]:
        m = self.modem
        return {
            ("", "exec"): lambda a: at.frame(),
            ("I", "exec"): lambda a: at.frame("Quectel", "BC28", f"Revision:BC28{self.settings.firmware_version[-6:]}"),
            ("+CGMR", "exec"): self._cgmr,
            ("+CGSN", "set"): lambda a: at.frame(f"+CGSN:{self.imei}"),
            ("+CFUN", "set"): self._cfun,
            ("+CFUN", "read"): lambda a: at.frame(f"+CFUN:{m.cfun}"),
            ("+CGATT", "read"): lambda a: at.frame(f"+CGATT:{1 if m.registration == 1 else 0}"),
            ("+CGATT", "set"): self._cgatt,
            ("+CEREG", "set"): self._cereg,
            ("+CEREG", "read"): self._cereg_read,
            ("+CSCON", "set"): self._cscon,
            ("+CSCON", "read"): lambda a: at.frame(f"+CSCON:{m.cscon_mode},{1 if m.connected else 0}"),
            ("+CPSMS", "set"): self._cpsms,
            ("+CPSMS", "read"): self._cpsms_read,
            ("+NPSMR", "set"): self._npsmr,
            ("+NPSMR", "read"): self._npsmr_read,
            ("+NUESTATS", "exec"): lambda a: self._nuestats("ALL"),
            ("+NUESTATS", "set"): lambda a: self._nuestats(a[0].upper()),
            ("+NUESTATS", "test"): lambda a: at.frame("NUESTATS:(RADIO,CELL,BLER,THP,APPSMEM,ALL)"),
            ("+NCONFIG", "set"): self._nconfig,
            ("+NCONFIG", "read"): self._nconfig_read,
            ("+NCSEARFCN", "exec"): self._ncsearfcn,
            ("+NEARFCN", "set"): self._nearfcn,
            ("+NBAND", "read"): lambda a: at.frame(f"+NBAND:{BANDS}"),
            ("+NBAND", "set"): lambda a: at.frame(),
            ("+NRB", "exec"): self._nrb,
            ("+NCDP", "set"): self._ncdp,
            ("+NCDP", "read"): self._ncdp_read,
            ("+NMSTATUS", "read"): lambda a: at.frame(f"+NMSTATUS:{self.lwm2m.status}"),
            ("+NNMI", "set"): self._nnmi,
            ("+NNMI", "read"): lambda a: at.frame(f"+NNMI:{self.nnmi_mode}"),
            ("+NSMI", "set"): self._nsmi,
            ("+NSMI", "read"): lambda a: at.frame(f"+NSMI:{self.nsmi_mode}"),
            ("+NMGS", "set"): lambda a: self._send_platform(a[0], a[1], 0),
            ("+NMGSEXT", "set"): lambda a: self._send_platform(a[-2], a[-1], 0),
            ("+QLWULDATAEX", "set"): lambda a: self._send_platform(a[0], a[1], int(a[2], 16)),
            ("+NMGR", "exec"): self._nmgr,
            ("+NQMGS", "exec"): lambda a: at.frame(f"PENDING=0,SENT={self.sent},ERROR={self.send_errors}"),
            ("+NQMGR", "exec"): lambda a: at.frame(f"BUFFERED={len(self.buffered)},RECEIVED={self.received},DROPPED=0"),
            ("+NSOCR", "set"): self._nsocr,
            ("+NSOST", "set"): lambda a: self._nsost(a[0], a[1], a[2], a[3], a[4], 0),
            ("+NSOSTF", "set"): lambda a: self._nsost(a[0], a[1], a[2], a[4], a[5], int(a[3], 16)),
            ("+NSORF", "set"): self._nsorf,
            ("+NSOCL", "set"): self._nsocl,
        }

    # ---- identity and configuration ------------------------------------------------------------
    def _cgmr(self, args) -> bytes:
        version = self.settings.firmware_version
        return at.frame(
            f"SSB,{version}", f"SECURITY_A,{version}", f"PROTOCOL_A,{version}", f"APPLICATION_A,{version}",
            f"SECURITY_B,{version}", "RADIO,Hi2115_RF1",
        )

    def _cfun(self, args) -> Generator[simpy.Event, None, bytes]:
        level = int(args[0])
        if level not in (0, 1):
            raise CommandError(CME_BAD_PARAMETERS)
        if level == 0:
            yield self.env.timeout(0.5)  # detach signalling and saving the frequency list
        self.modem.set_function(level)
        return at.frame()

    def _cgatt(self, args) -> bytes:
        if int(args[0]) == 1 and self.modem.cfun == 0:
            self.modem.set_function(1)
        elif int(args[0]) == 0:
            self.modem.set_function(0)
        return at.frame()

    def _cereg(self, args) -> bytes:
        mode = int(args[0])
        if mode not in range(6):
            raise CommandError(CME_BAD_PARAMETERS)
        self.modem.cereg_mode = mode
        return at.frame()

    def _cereg_read(self, args) -> bytes:
        m = self.modem
        if m.cereg_mode >= 2 and m.registration == 1 and m.serving is not None:
            extra = f',"{m.serving.tac:04X}","{m.serving.cell_id:08X}",9'
            if m.cereg_mode >= 4 and m.config.psm_requested:
                extra += f',,,"{encode_t3324(m.config.t3324_s)}","{encode_t3412(m.config.t3412_s)}"'
            return at.frame(f"+CEREG:{m.cereg_mode},{m.registration}{extra}")
        return at.frame(f"+CEREG:{m.cereg_mode},{m.registration}")

    def _cscon(self, args) -> bytes:
        self.modem.cscon_mode = int(args[0])
        return at.frame()

    def _cpsms(self, args) -> bytes:
        config = self.modem.config
        config.psm_requested = int(args[0]) == 1
        if len(args) >= 4 and args[3]:
            config.t3412_s = decode_t3412(args[3])
        if len(args) >= 5 and args[4]:
            config.t3324_s = decode_t3324(args[4])
        return at.frame()

    def _cpsms_read(self, args) -> bytes:
        config = self.modem.config
        return at.frame(
            f"+CPSMS:{1 if config.psm_requested else 0},,,{encode_t3412(config.t3412_s)},"
            f"{encode_t3324(config.t3324_s)}"
        )

    def _npsmr(self, args) -> bytes:
        self.modem.npsmr_mode = int(args[0])
        return at.frame()

    def _npsmr_read(self, args) -> bytes:
        m = self.modem
        return at.frame(f"+NPSMR:{m.npsmr_mode},{1 if m.in_psm else 0}" if m.npsmr_mode else "+NPSMR:0")

    def _nconfig(self, args) -> bytes:
        key, value = args[0].upper(), args[1].upper()
        if key not in NCONFIG_KEYS or value not in ("TRUE", "FALSE"):
            raise CommandError(CME_BAD_PARAMETERS)
        enabled = value == "TRUE"
        if key == "AUTOCONNECT":
            self.modem.config.autoconnect = enabled
        elif key == "CELL_RESELECTION":
            self.modem.config.pending_reselection = enabled  # takes effect after AT+NRB
        return at.frame()

    def _nconfig_read(self, args) -> bytes:
        config = self.modem.config
        reselection = config.cell_reselection if config.pending_reselection is None else config.pending_reselection
        values = {"AUTOCONNECT": config.autoconnect, "CELL_RESELECTION": reselection, "COMBINE_ATTACH": False,
                  "CR_0354_0338_SCRAMBLING": True, "CR_0859_SI_AVOID": True, "ENABLE_BIP": False,
                  "MULTITONE": True, "NAS_SIM_POWER_SAVING_ENABLE": True}
        lines = [f"+NCONFIG:{key},{'TRUE' if values[key] else 'FALSE'}" for key in NCONFIG_KEYS]
        lines += [f"+NCONFIG:{key},{value}" for key, value in NCONFIG_NUMERIC.items()]
        return at.frame(*lines)

    def _ncsearfcn(self, args) -> bytes:
        self.modem.clear_stored_earfcns()
        return at.frame()

    def _nearfcn(self, args) -> bytes:
        earfcn = int(args[1])
        self.modem.config.earfcn_lock = earfcn or None
        return at.frame()

    def _nrb(self, args) -> Generator[simpy.Event, None, bytes]:
        self._send(at.urc("REBOOTING"))
        self.modem.reboot()
        return b""

    # ---- statistics ----------------------------------------------------------------------------
    def _nuestats(self, which: str) -> bytes:
        m = self.modem
        measurement = m.measurement()
        if measurement is not None and not measurement.suitable:
            measurement = None  # below sensitivity (or switched off, -inf): out of service, nothing to measure
        if measurement is None:
            fields = {"Signal power": -32768, "Total power": -32768, "TX power": -32768, "TX time": 0,
                      "RX time": 0, "Cell ID": -1, "ECL": 255, "SNR": -32768, "EARFCN": 0, "PCI": 65535,
                      "RSRQ": -32768, "OPERATOR MODE": 4, "CURRENT BAND": 8}
        else:
            cell = measurement.cell
            rsrp, sinr = measurement.rsrp_dbm, measurement.sinr_db
            fields = {
                "Signal power": round(rsrp * 10), "Total power": round((rsrp + 10.8) * 10),
                "TX power": round(m.tx_power_dbm * 10), "TX time": 0, "RX time": 0, "Cell ID": cell.cell_id,
                "ECL": m.network.ecl(measurement), "SNR": round(sinr * 10), "EARFCN": cell.earfcn,
                "PCI": cell.pci, "RSRQ": round(-108 + min(sinr, 20) * 2), "OPERATOR MODE": 4,
                "CURRENT BAND": cell.band,
            }
        if which == "CELL":
            if measurement is None:
                return at.frame()
            lines = [f"NUESTATS:CELL,{measurement.cell.earfcn},{measurement.cell.pci},1,{fields['Signal power']},"
                     f"{fields['RSRQ']},{fields['Total power']},{fields['SNR']}"]
            for cell in m.network.neighbours(measurement.cell):
                other = m.network.radio.measure(cell)
                if other.suitable:
                    lines.append(f"NUESTATS:CELL,{cell.earfcn},{cell.pci},0,{round(other.rsrp_dbm * 10)},"
                                 f"{round(-108 + min(other.sinr_db, 20) * 2)},{round((other.rsrp_dbm + 10.8) * 10)},"
                                 f"{round(other.sinr_db * 10)}")
            return at.frame(*lines)
        if which == "RADIO":
            return at.frame(*(f"NUESTATS:RADIO,{key}:{value}" for key, value in fields.items()))
        if which != "ALL":
            raise CommandError(CME_BAD_PARAMETERS)
        return at.frame(*(f"{key}:{value}" for key, value in fields.items()))

    # ---- platform (LwM2M) ----------------------------------------------------------------------
    def _ncdp(self, args) -> bytes:
        port = int(args[1]) if len(args) > 1 and args[1] else CDP_DEFAULT_PORT
        self.lwm2m.server = (args[0], port)
        return at.frame()

    def _ncdp_read(self, args) -> bytes:
        server = self.lwm2m.server
        return at.frame(f"+NCDP:{server[0]},{server[1]}" if server else "+NCDP:")

    def _nnmi(self, args) -> bytes:
        self.nnmi_mode = int(args[0])
        return at.frame()

    def _nsmi(self, args) -> bytes:
        self.nsmi_mode = int(args[0])
        return at.frame()

    def _nmgr(self, args) -> bytes:
        if not self.buffered:
            return at.frame()
        payload = self.buffered.pop(0)
        return at.frame(f"{len(payload)},{payload.hex().upper()}")

    def _on_attached(self) -> None:
        """A (re-)attach gives a new IP context: the platform registration starts over."""
        self.lwm2m.reset()
        if self.lwm2m.server is not None:
            self.lwm2m.start_registration()

    def _transmit_to_server(self, datagram: bytes) -> Generator[simpy.Event, None, bool]:
        if self.lwm2m.server is None:
            return False
        return (yield from self.modem.transmit(datagram, self.lwm2m.server))

    def _send_platform(self, length: str, data: str, mode: int) -> Generator[simpy.Event, None, bytes]:
        payload = bytes.fromhex(data)
        if int(length) != len(payload):
            raise CommandError(CME_BAD_PARAMETERS)
        if self.lwm2m.server is None:
            raise CommandError(CME_NOT_CONFIGURED)
        if self.modem.cfun == 0:
            raise CommandError(CME_MINIMUM_FUNCTION)
        if not self.lwm2m.ready:
            if self.modem.registration == 1:
                self.lwm2m.start_registration()
                yield self.lwm2m.observed | self.env.timeout(OBSERVE_WAIT_S)
            if not self.lwm2m.ready:
                return at.cme_error(CME_NOT_REGISTERED)
        self.env.process(self._platform_uplink(payload, mode))
        return at.frame()

    def _platform_uplink(self, payload: bytes, mode: int) -> Generator[simpy.Event, None, None]:
        confirmable = bool(mode & QLWUL_CONFIRMABLE)
        ok = yield from self.lwm2m.notify(payload, confirmable)
        if ok:
            self.sent += 1
        else:
            self.send_errors += 1
        if confirmable:
            self._urc(f"+QLWULDATASTATUS:{STATUS_SUCCESS if ok else STATUS_TIMEOUT}")
        elif self.nsmi_mode:
            self._urc("+NSMI:SENT" if ok else "+NSMI:DISCARDED")
        if ok and mode & QLWUL_RELEASE_AFTER_SEND:
            self.modem.release_assistance()
        elif ok and mode & QLWUL_RELEASE_AFTER_REPLY:
            self._release_on_reply = True

    def _on_lwm2m_downlink(self, payload: bytes) -> None:
        self.received += 1
        if self.nnmi_mode == 1:
            self._urc(f"+NNMI:{len(payload)},{payload.hex().upper()}")
        else:
            self.buffered.append(payload)
            if self.nnmi_mode == 2:
                self._urc("+NNMI")
        if self._release_on_reply:
            self._release_on_reply = False
            self.env.process(self._release_after_ack())

    def _release_after_ack(self) -> Generator[simpy.Event, None, None]:
        yield self.env.timeout(0.1)  # the 2.04 ACK goes out first
        self.modem.release_assistance()

    # ---- UDP sockets ---------------------------------------------------------------------------
    def _nsocr(self, args) -> bytes:
        if args[0].upper() != "DGRAM" or int(args[1]) != 17:
            raise CommandError(CME_BAD_PARAMETERS)
        socket_id = next(i for i in range(7) if i not in self.sockets)
        self.sockets[socket_id] = Socket(int(args[2]), received=[])
        return at.frame(str(socket_id))

    def _nsost(self, socket_id: str, ip: str, port: str, length: str, data: str, flags: int
               ) -> Generator[simpy.Event, None, bytes]:
        sock = self.sockets.get(int(socket_id))
        payload = bytes.fromhex(data)
        if sock is None or int(length) != len(payload):
            raise CommandError(CME_BAD_PARAMETERS)
        if self.modem.registration != 1:
            raise CommandError(CME_WRONG_STATE)
        sock.peer = (ip, int(port))
        sock.release_on_reply = bool(flags & NSOSTF_RELEASE_AFTER_REPLY)
        self.env.process(self._socket_uplink(payload, sock.peer, flags))
        return at.frame(f"{socket_id},{len(payload)}")

    def _socket_uplink(self, payload: bytes, peer: tuple[str, int], flags: int) -> Generator[simpy.Event, None, None]:
        ok = yield from self.modem.transmit(payload, peer)
        if ok and flags & NSOSTF_RELEASE:
            self.modem.release_assistance()

    def _nsorf(self, args) -> bytes:
        sock = self.sockets.get(int(args[0]))
        if sock is None:
            raise CommandError(CME_BAD_PARAMETERS)
        if not sock.received:
            return at.frame()
        (ip, port), payload = sock.received.pop(0)
        return at.frame(f"{args[0]},{ip},{port},{len(payload)},{payload.hex().upper()},0")

    def _nsocl(self, args) -> bytes:
        if self.sockets.pop(int(args[0]), None) is None:
            raise CommandError(CME_BAD_PARAMETERS)
        return at.frame()

    def _on_downlink_datagram(self, datagram: bytes, source: tuple[str, int]) -> None:
        """The LwM2M client hears only its server (any source with the S1 defect switch); sockets their peers."""
        if self.lwm2m.server is not None and (source == self.lwm2m.server or self.settings.downlinks_from_any_source):
            self.lwm2m.on_datagram(datagram)
            return
        for socket_id, sock in self.sockets.items():
            if sock.peer == source:
                sock.received.append((source, datagram))
                self._urc(f"+NSONMI:{socket_id},{len(datagram)}")
                if sock.release_on_reply:
                    sock.release_on_reply = False
                    self.modem.release_assistance()
                return
