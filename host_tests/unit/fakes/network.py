"""A stand-in for the ESP32 `network` module: one station interface whose link tests switch."""
STA_IF = 0
connected = True


class WLAN:
    def __init__(self, interface):
        self.interface = interface

    def isconnected(self):
        return connected
