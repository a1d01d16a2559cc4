"""What sockspec tests: servers (``servers``) and clients (``clients``) under test, declared
in a targets TOML or on the command line, and the selection of a run (``selection``).

Internal (README, "Writing your own scenarios", says what is public).
"""

PROFILES = ("echo", "http")
TRANSPORTS = ("tcp", "tcp6", "unix")
