"""Fixtures shared by the project's own tests."""

import pytest


@pytest.fixture(params=["native", "python"])
def engine(request):
    """Both measurement engines obey the same rules (the test env installs numba)."""
    return request.param
