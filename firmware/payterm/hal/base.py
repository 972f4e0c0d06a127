"""What every HAL does the same way on the device and on the host."""
import asyncio
import gc


class BaseHAL:
    def link_up(self):
        return True

    async def open_connection(self, host, port, ssl=None, server_hostname=None):
        if not self.link_up():
            # No interface, no address: nothing can have reached the host, so the
            # link may retry or approve offline (sent=False), and the technician
            # sees the network itself is down, not the host.
            from payterm.errors import Fault

            f = Fault("NET-01", "network interface down", "connect")
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
