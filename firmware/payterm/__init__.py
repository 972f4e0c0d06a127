"""payterm: card payment terminal firmware."""
VERSION = "0.1.0"
