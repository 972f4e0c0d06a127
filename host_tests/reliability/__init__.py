"""Reliability and security suite (pytest, CPython): fuzzing, leak scan, PIN lockout, TLS; see payterm_reliability."""
