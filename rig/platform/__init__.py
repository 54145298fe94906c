"""The rig's LwM2M/CoAP platform ("CDP"): the meters register, report and take commands here."""

from rig.platform.server import Datagram, Platform, Ticket, Uplink

__all__ = ["Datagram", "Platform", "Ticket", "Uplink"]
