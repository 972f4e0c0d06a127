"""Store-and-forward: offline approvals under the floor limit, queued on flash.

The queue is the journal itself (kind "saf"), so an offline approval is one
committed record and survives any power cut. Advices go up strictly in the
order they were taken, one at a time; the attempt count is journaled before
each send so anything after the first is flagged as a repeat (0221) and the
host never books one STAN twice.
Statuses the technician sees: pending, sent, declined, failed (gave up after
max_tries; still listed so it can be settled by hand), voided (dropped from
the queue before any upload attempt), voiding (a void is cancelling its
advice at the host: never uploaded again), reversed (its advice was cancelled
at the host by a void).
"""
from payterm.errors import Fault

KIND = "saf"


class Saf:
    def __init__(self, journal, floor_limit=0, max_count=0, max_total=0, max_tries=20):
        self.journal = journal
        self.floor_limit = floor_limit
        self.max_count = max_count
        self.max_total = max_total
        self.max_tries = max_tries

    def pending(self):
        """Advices still to upload, oldest first (a voided one never is, whatever its status says)."""
        return [t for t in self.journal.records(KIND, "pending") if not t.get("voided")]

    def totals(self):
        p = self.pending()
        return len(p), sum(t.get("amt", 0) for t in p)

    def check(self, amount):
        """Raise unless a sale of `amount` may be approved offline now."""
        if amount > self.floor_limit:
            raise Fault("SYS-08", "offline and %d above floor limit %d" % (amount, self.floor_limit), "txn")
        count, total = self.totals()
        if count + 1 > self.max_count or total + amount > self.max_total:
            raise Fault("SYS-04", "SAF %d/%d items, %d/%d total" % (count, self.max_count, total, self.max_total), "txn")

    def next(self):
        """Oldest advice still to upload, or None."""
        p = self.pending()
        return p[0] if p else None

    def summary(self):
        """Counts by status, for the technician menu and console."""
        out = {"pending": 0, "sent": 0, "declined": 0, "failed": 0, "voided": 0, "voiding": 0, "reversed": 0}
        for t in self.journal.records(KIND):
            s = t.get("st")
            out[s] = out.get(s, 0) + 1
        return out
