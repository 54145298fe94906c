"""Exceptions that tell a rig fault (the check is broken) from a product failure (the check failed).

Checks fail only through assertions; everything here is a rig fault and so reports as broken.
"""


class RigFault(RuntimeError):
    """The bench could not do what the check needed: the verdict is `broken`, not `failed`."""


class TwinError(RigFault):
    """The twin's control port refused a command, answered an error, or stopped answering."""


class InstrumentError(RigFault):
    """An instrument reported an error for a command; the message names the command."""


class InstrumentLost(RigFault):
    """The connection to an instrument failed and retries within the budget did not bring it back."""


class CalibrationFault(RigFault):
    """The bench is not where its calibration says: the device's own reading disagrees and no correction
    could bring it to the level. The message names both figures and what to re-measure."""
