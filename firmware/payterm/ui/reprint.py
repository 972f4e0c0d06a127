"""The last receipt, for a reprint (F 4), kept across a power cut.

A customer who asks for a copy after the terminal rebooted still gets one: the
last live receipt's Result (masked card number only: a Result holds no card
data) and the time it was printed are written atomically to `receipt.json` in
the terminal's storage each time a receipt is printed or held back for lack of
paper. A reprint prints that receipt as DUPLICATE with its original time.
Training receipts stay in RAM: they end with training mode, and a reprint in
training mode prints only a training receipt (a live one only outside it).
"""
from payterm.diag import _store
from payterm.txn.result import Result

_FILE = "receipt.json"


class LastReceipt:
    def __init__(self, root, diag=None):
        self.path = root + "/" + _FILE
        self.diag = diag
        self._live = None  # (Result, time tuple)
        self._training = None
        data, damaged = _store.load(self.path)
        if isinstance(data, dict):
            self._live = _result(data)
        if damaged and diag is not None:
            diag.fault("SYS-02", "print", "last receipt unreadable: no reprint until the next receipt")

    def keep(self, r, training, when):
        """`r` was printed (or held back for paper) at `when` (a time.localtime() tuple)."""
        if training:
            self._training = (r, tuple(when))
            return
        self._live = (r, tuple(when))
        d = {"when": list(when)}
        for k in Result.__slots__:
            d[k] = getattr(r, k)
        try:
            _store.save(self.path, d)
        except OSError as e:
            # The sale stands and the copy is in RAM; after a power cut there is no reprint.
            if self.diag is not None:
                self.diag.fault("SYS-01", "print", "last receipt not saved: %s" % e)

    def last(self, training):
        """(Result, time tuple) of the last receipt of this mode, or None."""
        return self._training if training else self._live

    def end_training(self):
        self._training = None


def _result(d):
    """(Result, when) from the file's dict, or None when it is not one."""
    try:
        r = Result(bool(d["approved"]))
        for k in Result.__slots__:
            if k in d:
                setattr(r, k, d[k])
        when = tuple(int(x) for x in d["when"])
        if len(when) < 6:
            return None
        return r, when
    except (KeyError, TypeError, ValueError):
        return None
