"""Toxics: faults put between the harness and the program under test (``--toxic``).

``spec`` parses what the user writes (``--toxic SPEC``, ``[[toxic]]`` tables) into
profiles, one value each of the matrix's toxic dimension; ``relay`` is the
user-space proxy that applies them; ``fronts`` puts relays in front of the
addresses an item uses; ``applies`` says which families mean nothing under which
toxics. README "Toxics" documents the syntax.
"""
