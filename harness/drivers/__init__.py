"""Drivers: reusable client-side behaviours that scenarios compose.

Each module is one concern (many connections, slow readers, crafted HTTP
requests, ...), built on sockspec.transport and the reference client. Every
wait takes an explicit timeout.
"""
