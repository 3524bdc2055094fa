"""Typed errors for the desktop Khaos SOAP service (reference §2.5).

Khaos answers a failed call with a SOAP ``<Fault>``; only the ``faultstring`` tells the
faults apart, so they are matched on the documented texts (case-insensitive)."""

from __future__ import annotations


class SoapError(Exception):
    """Any failure of a desktop Khaos SOAP call."""


class SoapTransportError(SoapError):
    """The SOAP service could not be reached, timed out, or answered something not SOAP."""


class SoapFault(SoapError):
    """Khaos answered with a SOAP fault."""

    def __init__(self, faultcode: str, faultstring: str, operation: str = "") -> None:
        where = f"{operation}: " if operation else ""
        super().__init__(f"{where}{faultstring or faultcode}")
        self.faultcode = faultcode
        self.faultstring = faultstring
        self.operation = operation


class ReturnNotFound(SoapFault):
    """ProcessReturn: "Return does not exist or has been deleted"."""


class ReturnAlreadyProcessed(SoapFault):
    """ProcessReturn: "Return has already been processed"."""


class ReturnPartiallyProcessed(SoapFault):
    """ProcessReturn: "Return has been partially processed, unable to continue"."""


class ReturnCodeOrAuthMissing(SoapFault):
    """ProcessReturn: "Return Code or Auth Code not defined"."""


# The documented ProcessReturn fault texts (reference §2.5, dev 025799).
FAULT_TEXTS: dict[str, type[SoapFault]] = {
    "return does not exist or has been deleted": ReturnNotFound,
    "return has already been processed": ReturnAlreadyProcessed,
    "return has been partially processed, unable to continue": ReturnPartiallyProcessed,
    "return code or auth code not defined": ReturnCodeOrAuthMissing,
}

PROCESS_RETURN_SUCCESS = "Return has successfully been processed"


def fault_from(faultcode: str, faultstring: str, operation: str = "") -> SoapFault:
    """The most specific typed fault for a SOAP fault answer."""
    text = " ".join(faultstring.split()).lower().rstrip(".")
    for known, cls in FAULT_TEXTS.items():
        if known in text:
            return cls(faultcode, faultstring, operation)
    return SoapFault(faultcode, faultstring, operation)
