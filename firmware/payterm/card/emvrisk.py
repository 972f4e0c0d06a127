"""Per-AID terminal parameters, terminal risk management and the CVM decision.

The AID list is a terminal parameter (`aids` in payterm.config DEFAULTS and
provision.json): each entry is an AID (partial selection: it matches every
card AID that starts with it) or an object with the AID's own kernel,
priority and limits. What an entry does not say comes from the terminal-wide
parameters: `cl_tx_limit`, `cl_cvm_limit`, `floor_limit` (minor units).

Limits (EMV Contactless Book A 5.2 pre-processing, compared as "above"):
- amount above the contactless transaction limit: this AID may not be used
  for the tap; a card with no other AID gets CRD-14 (INSERT OR SWIPE CARD),
  and the tap never reaches the host;
- amount above the CVM required limit: a CVM is required (TTQ byte 2 b7);
- amount above the floor limit: TVR byte 4 b8, and no deferred (offline)
  authorization.

CVM (`card.cvm`): "cdcvm" when the card says the cardholder was verified on
the device (qVSDC: CTQ byte 2 b8; M/Chip: AIP byte 1 b2 on-device CVM, above
the CVM limit), else above the CVM limit "online_pin" when the terminal does
online PIN (`online_pin` parameter, set once the PIN entry flow is in) and
"signature" otherwise; "none" below it.
"""
from micropython import const

from payterm.errors import Fault

KERNEL_QVSDC = "qvsdc"  # Book C-3: cryptogram in the GPO answer
KERNEL_MCHIP = "mchip"  # Book C-2: GENERATE AC after the records
KERNELS = (KERNEL_QVSDC, KERNEL_MCHIP)

# Registered application provider ids (ISO/IEC 7816-5) -> kernel of their contactless applications.
_RID_KERNEL = (
    ("A000000003", KERNEL_QVSDC),  # Visa, Visa Electron, V PAY (C-3)
    ("A000000333", KERNEL_QVSDC),  # UnionPay (C-7, qVSDC-like)
    ("A000000004", KERNEL_MCHIP),  # Mastercard, Maestro (C-2)
    ("A000000359", KERNEL_MCHIP),  # girocard (C-2 based)
    ("A000000025", KERNEL_MCHIP),  # American Express (C-4, GENERATE AC)
    ("A000000152", KERNEL_MCHIP),  # Discover D-PAS (C-6)
    ("A000000065", KERNEL_MCHIP),  # JCB (C-5)
)
_KEYS = ("aid", "kernel", "priority", "tx_limit", "cvm_limit", "floor_limit", "deferred", "label")
_HEXCHARS = "0123456789ABCDEFabcdef"

# Book C-3 A.2 CTQ byte 1 / byte 2
_CTQ1_ONLINE_PIN = const(0x80)
_CTQ1_SIGNATURE = const(0x40)
_CTQ2_CDCVM = const(0x80)  # consumer device CVM performed
# Book 3 C1 AIP byte 1 b2: on-device cardholder verification supported (C-2)
_AIP1_ODCVM = const(0x02)
# Book 3 Table 15 (9F27): cryptogram type in b8-b7
CID_TYPE = const(0xC0)
CID_AAC = const(0x00)
CID_TC = const(0x40)
CID_ARQC = const(0x80)

_STAGE = "emv"


def kernel_for(aid_hex):
    """Default kernel of an AID by its RID."""
    a = aid_hex.upper()
    for rid, k in _RID_KERNEL:
        if a.startswith(rid):
            return k
    return KERNEL_MCHIP


def entry_error(e):
    """Why one `aids` entry is unusable (None: fine). Used by payterm.config.validate too."""
    if isinstance(e, str):
        e = {"aid": e}
    if not isinstance(e, dict):
        return "entries must be AID strings or objects"
    for k in e:
        if k not in _KEYS:
            return "unknown key %r in an AID entry" % k
    aid = e.get("aid")
    if not isinstance(aid, str) or not 10 <= len(aid) <= 32 or len(aid) % 2:
        return "aid must be 10-32 hex digits"
    for ch in aid:
        if ch not in _HEXCHARS:
            return "aid must be 10-32 hex digits"
    k = e.get("kernel")
    if k is not None and k not in KERNELS:
        return "kernel of %s must be one of %s" % (aid, ", ".join(KERNELS))
    p = e.get("priority")
    if p is not None and (not isinstance(p, int) or isinstance(p, bool) or not 1 <= p <= 15):
        return "priority of %s must be 1-15" % aid
    for lk in ("tx_limit", "cvm_limit", "floor_limit"):
        v = e.get(lk)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            return "%s of %s must be a whole number >= 0" % (lk, aid)
    d = e.get("deferred")
    if d is not None and not isinstance(d, bool):
        return "deferred of %s must be true or false" % aid
    lb = e.get("label")
    if lb is not None and not isinstance(lb, str):
        return "label of %s must be a string" % aid
    return None


def aid_table(cfg):
    """The `aids` parameter as complete entries (every key filled in), in list order."""
    out = []
    for e in cfg.get("aids") or ():
        why = entry_error(e)
        if why:
            raise Fault("SYS-07", "aids: " + why, _STAGE)
        if isinstance(e, str):
            e = {"aid": e}
        aid = e["aid"].upper()
        kernel = e.get("kernel") or kernel_for(aid)
        d = e.get("deferred")
        out.append({
            "aid": aid, "kernel": kernel, "priority": e.get("priority") or 0,
            "tx_limit": _limit(e, "tx_limit", cfg, "cl_tx_limit"),
            "cvm_limit": _limit(e, "cvm_limit", cfg, "cl_cvm_limit"),
            "floor_limit": _limit(e, "floor_limit", cfg, "floor_limit"),
            # Deferred authorization of an ARQC: Visa allows it (qVSDC); an M/Chip
            # ARQC must be completed online (Book C-2 has no deferred authorization).
            "deferred": (kernel == KERNEL_QVSDC) if d is None else d,
            "label": e.get("label") or "",
        })
    return out


def _limit(e, key, cfg, fallback):
    v = e.get(key)
    if v is None:
        v = cfg.get(fallback)
    return int(v or 0)


def match(table, aid_hex):
    """The entry for a card AID: the longest terminal AID it starts with (None: not supported)."""
    best = None
    for e in table:
        if aid_hex.startswith(e["aid"]) and (best is None or len(e["aid"]) > len(best["aid"])):
            best = e
    return best


def allowed(entry, amount):
    """Book A 5.2.2: above the contactless transaction limit the AID may not be used."""
    return amount <= entry["tx_limit"]


def cvm_required(entry, amount):
    return amount > entry["cvm_limit"]


def above_floor(entry, amount):
    return amount > entry["floor_limit"]


def cvm(kernel, entry, amount, cfg, aip=None, ctq=None):
    """The cardholder verification for this tap: none | signature | online_pin | cdcvm."""
    required = cvm_required(entry, amount)
    if kernel == KERNEL_QVSDC:
        if ctq is not None and len(ctq) >= 2 and ctq[1] & _CTQ2_CDCVM:
            return "cdcvm"
    elif required and aip is not None and len(aip) >= 1 and aip[0] & _AIP1_ODCVM:
        return "cdcvm"
    if not required:
        return "none"
    if cfg.get("online_pin"):
        # qVSDC: the card may ask for signature only (CTQ byte 1 b7 without b8).
        if kernel != KERNEL_QVSDC or ctq is None or len(ctq) < 1 or ctq[0] & _CTQ1_ONLINE_PIN \
                or not ctq[0] & _CTQ1_SIGNATURE:
            return "online_pin"
    return "signature"


def cid_type(cid):
    return cid & CID_TYPE


def deferral(entry, cid):
    """None when this tap's ARQC may be authorized later (offline, under the floor limit), else the code."""
    if cid is None or cid_type(cid) != CID_ARQC or not entry["deferred"]:
        return "CRD-20"
    return None
