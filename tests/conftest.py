"""Shared test set-up: a non-interactive matplotlib backend and small shared fixtures."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

import helpers  # noqa: E402


@pytest.fixture(scope="session")
def dyestuff():
    return helpers.load_dataset("dyestuff")


@pytest.fixture(scope="session")
def sleepstudy():
    return helpers.load_dataset("sleepstudy")


@pytest.fixture(scope="session")
def radon():
    return helpers.load_dataset("radon")
