"""What every HAL does the same way on the device and on the host."""
import asyncio
import gc
import os


class BaseHAL:
    storage = ""

    async def open_connection(self, host, port, ssl=None, server_hostname=None):
        if ssl is None:
            return await asyncio.open_connection(host, port)
        return await asyncio.open_connection(host, port, ssl=ssl, server_hostname=server_hostname)

    def ssl_module(self):
        import ssl

        return ssl

    def mem_free(self):
        return gc.mem_free()

    def storage_free(self):
        st = os.statvfs(self.storage or "/")
        return st[0] * st[4]
