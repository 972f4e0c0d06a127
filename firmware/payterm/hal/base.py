"""What every HAL does the same way on the device and on the host."""
import asyncio
import gc


class BaseHAL:
    printer = None  # status(), async poll(), async print_lines(lines); None: the board has no printer

    def panel(self, on_fault=None) -> object:
        """The board's own display and keypad as a ui.localpanel.LocalPanel, or None when the
        panel is a UART device (the app then speaks the panel protocol on stream("panel"))."""
        return None

    def link_up(self) -> bool:
        return True

    def link_state(self) -> str:
        """Why the link is down, for the technician ("" when there is nothing to say)."""
        return ""

    def start(self, cfg):
        """Bring up what needs the terminal's parameters (the WLAN on the device)."""

    def config_overrides(self):
        """Parameters the HAL puts over the provisioning file (none: it is the one source)."""
        return {}

    def hold_watchdog(self):
        """Stop the watchdog from resetting a terminal a technician has stopped (REPL, deploy)."""

    async def open_connection(self, host, port, ssl=None, server_hostname=None):
        if not self.link_up():
            # No interface, no address: nothing can have reached the host, so the
            # link may retry or approve offline (sent=False), and the technician
            # sees the network itself is down, not the host.
            from payterm.errors import Fault

            why = self.link_state()
            f = Fault("NET-01", "network interface down" + (" (%s)" % why if why else ""), "connect")
            f.sent = False
            raise f
        if ssl is None:
            return await asyncio.open_connection(host, port)
        return await asyncio.open_connection(host, port, ssl=ssl, server_hostname=server_hostname)

    def ssl_module(self):
        import ssl

        return ssl

    def mem_free(self):
        return gc.mem_free()
