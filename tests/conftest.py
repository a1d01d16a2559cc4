"""Fixtures shared by the project's own tests."""

import pytest


@pytest.fixture(params=["native", "python"])
def engine(request):
    """Both measurement engines obey the same rules (the test env installs numba)."""
    return request.param


# The selftest's longest items (a fresh machine's `--durations`, 30 s to 85 s), started
# first: xdist hands items out in collection order, and one of these handed out last
# would leave the other worker idle at the end of the run.
LONGEST_FIRST = (
    "test_proto_measure.py::test_kv_variants_fail_their_family_and_no_other",
    "test_proto_measure.py::test_frames_variants_fail_their_family",
    "test_faulty_servers.py::test_faulty_server_fails_its_family_only[slow_accept_loop-tcp]",
    "test_faulty_servers.py::test_faulty_server_fails_its_family_only[listen_backlog_one-tcp]",
    "test_faulty_servers.py::test_faulty_server_fails_its_family_only[one_at_a_time-tcp]",
    "test_faulty_servers.py::test_faulty_server_fails_its_family_only"
    "[head_end_in_newest_chunk_http-tcp]",
)


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        return next((i for i, name in enumerate(LONGEST_FIRST) if name in item.nodeid),
                    len(LONGEST_FIRST))

    items.sort(key=rank)   # stable: the rest keep their order
