"""Terminal cryptography: AES DUKPT keys, the ISO 9564 format 4 PIN block, AES-CMAC and data encryption.

- `aes`: thin ECB/CBC helpers over MicroPython's `cryptolib` (C AES on the unix port and ESP32).
- `dukpt`: ANSI X9.24-3-2017 AES DUKPT: key derivation, the terminal's intermediate derivation
  key registers and transaction counter (persisted before use), one `Transaction` per payment.
- `pinblock`: ISO 9564-1 format 4 PIN block (PIN arrives as a bytearray and is zeroed).
- `cmac`: AES-CMAC (NIST SP 800-38B / RFC 4493) for field 64.
- `data`: AES-CBC data encryption for card data at rest (store-and-forward).

docs/keys.md describes the key hierarchy, the KSN and where fields 52/53/64 carry the results.
Failures raise `Fault("KEY-nn"/"PIN-nn", detail, "key")`; no key, PIN or PAN ever goes into a detail.
"""
