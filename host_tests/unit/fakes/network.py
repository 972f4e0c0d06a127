"""A stand-in for the ESP32 `network` module: one station interface and the access points in range.

Nothing is connected until a test puts an access point in range (`ap(ssid,
password)`), the HAL activates the interface and asks it to connect, and the
test lets the radio finish (`settle()`). `drop()` loses the link. Status codes
and signatures are those of micropython-esp32-stubs (checked by
host_tests/tools/test_hal_fakes.py).
"""
FAKE_ONLY = ("FAKE_ONLY", "aps", "interfaces", "ap", "settle", "drop", "clear")

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_CONNECT_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204

aps = {}  # ssid -> password of the access points in range
interfaces = []


def ap(ssid, password):
    aps[ssid] = password


def clear():
    aps.clear()
    del interfaces[:]


def settle():
    """The radio finishes every connection attempt under way."""
    for w in interfaces:
        if w._status == STAT_CONNECTING:
            if w._ssid not in aps:
                w._status = STAT_NO_AP_FOUND
            elif aps[w._ssid] != w._key:
                w._status = STAT_WRONG_PASSWORD
            else:
                w._status = STAT_GOT_IP


def drop():
    """The access point goes away: a connected interface loses its link."""
    for w in interfaces:
        if w._status == STAT_GOT_IP:
            w._status = STAT_BEACON_TIMEOUT


class WLAN:
    def __init__(self, interface_id=STA_IF):
        self.interface = interface_id
        self._active = False
        self._status = STAT_IDLE
        self._ssid = None
        self._key = None
        self.connects = []
        self.settings = {}
        interfaces.append(self)

    def active(self, is_active=None):
        if is_active is None:
            return self._active
        self._active = bool(is_active)
        if not self._active:
            self._status = STAT_IDLE

    def config(self, **kwargs):
        self.settings.update(kwargs)

    def connect(self, ssid=None, password=None, *, bssid=None):
        if not self._active:
            raise OSError("Wifi Not Started")
        self.connects.append(ssid)
        self._ssid = ssid
        self._key = password
        self._status = STAT_CONNECTING

    def disconnect(self):
        self._status = STAT_IDLE

    def status(self):
        return self._status

    def isconnected(self):
        return self._status == STAT_GOT_IP
