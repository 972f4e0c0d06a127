"""Acquirer link: ISO 8583 codec, framed TCP/TLS transport, retry and breaker."""
