"""The harness plays the server: the reference server's code turned adversarial.

Used to judge clients under test. ``Plan`` and ``Listening`` (plan.py) say what
to do; ``AdversaryServer`` (server.py) listens in a thread and serves every
connection as planned (connection.py), keeping a log of what it did as evidence.
"""

from sockspec.adversary.connection import ConnectionLog
from sockspec.adversary.plan import Dribble, Ending, FileBody, Listening, Plan
from sockspec.adversary.server import AdversaryServer, max_length_unix_path

__all__ = ["AdversaryServer", "ConnectionLog", "Dribble", "Ending", "FileBody", "Listening",
           "Plan", "max_length_unix_path"]
