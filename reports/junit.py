"""JUnit XML: the harness's own trouble in a scenario's call is an <error>, not a <failure>.

pytest's junitxml plugin decides between the two from the phase alone: a failed
call is a <failure>, a failed setup or teardown an <error>. A scenario whose
call raised HarnessError (the harness could not do its part) is "error" in the
results JSON and E / ERROR on the terminal; ``harness_errors_as_errors``
rewrites the file pytest wrote so its JUnit XML says so too: each such
testcase's <failure> becomes an <error>, and its suite's ``failures`` and
``errors`` counts follow. A testcase is recognised by the property the plugin
puts on its last report (pytest writes a testcase's properties from it), named
by the caller (``sockspec-harness-error``, its value the error's message).

Only a regular file (or a link to one) is rewritten, through
sockspec.reports.outputs (atomically, the link kept); a stream (``/dev/stdout``)
has already gone by.
"""

from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET

from sockspec.reports.outputs import OutputError, write_output


def harness_errors_as_errors(path: str | os.PathLike, marker: str) -> int:
    """Rewrite ``path`` as the module docstring says; how many testcases changed.
    OutputError with one line when the file cannot be read, parsed or written."""
    resolved = os.path.realpath(path)
    try:
        if not stat.S_ISREG(os.stat(resolved).st_mode):
            return 0
        with open(resolved, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        return 0        # pytest wrote none (it says why itself)
    except OSError as exc:
        raise OutputError(f"cannot read JUnit XML {path}: {exc.strerror or exc}") from None
    if f'name="{marker}"' not in text:
        return 0
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise OutputError(f"cannot read JUnit XML {path}: {exc}") from None
    changed = 0
    for suite in root.iter("testsuite"):
        moved = 0
        for case in suite.iter("testcase"):
            if not any(p.get("name") == marker for p in case.iter("property")):
                continue
            failures = [child for child in case if child.tag == "failure"]
            for child in failures:
                child.tag = "error"
            moved += bool(failures)
        if moved:
            suite.set("failures", str(max(0, int(suite.get("failures", "0")) - moved)))
            suite.set("errors", str(int(suite.get("errors", "0")) + moved))
            changed += moved
    if changed:
        write_output(path, '<?xml version="1.0" encoding="utf-8"?>'
                     + ET.tostring(root, encoding="unicode"), "JUnit XML")
    return changed
