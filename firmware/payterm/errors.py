"""The one exception type the firmware raises for anything a person must hear about.

Every failure carries a catalog code (payterm.codes) so the display, the
customer, the fault log and the technician all see the same cause. Protocol
layers raise; the supervisor/app decides what to retry and what to show.
Code ids are string literals (e.g. "CRD-07") so a test can find every code
raised anywhere in firmware/ and check it is in the catalog.
"""


class Fault(Exception):
    # Set by the link on the faults it raises (see docs/architecture.md); absent otherwise.
    sent: bool

    def __init__(self, code, detail="", stage=""):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail
        self.stage = stage

    def __str__(self):
        return "%s %s" % (self.code, self.detail) if self.detail else self.code
