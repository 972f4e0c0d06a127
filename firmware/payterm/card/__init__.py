"""Card reading: magstripe (ISO 7813) and contactless EMV over a PN532.

Submodules are imported directly (payterm.card.magstripe, .tlv, .pn532,
.emv, .card, .service) so the parsers load on runtimes without asyncio.
"""
