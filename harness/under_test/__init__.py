"""The life cycle of a program under test: a server started, shared, stopped and
inspected (``server``), a client run against the harness (``client``), and the ports
and paths they use (``ports``). Internal.
"""
