"""Removing a sandbox container: a transient refusal is retried, gone is done, and a container
that cannot be removed is reported (it would otherwise outlive its run unannounced)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from docker.errors import APIError, NotFound

from sandbox.backends._docker import _remove


class _Api:
    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    def remove_container(self, cid: str, *, force: bool, v: bool) -> None:
        assert force and v  # the container and its anonymous volumes, running or not
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


class _Client:
    def __init__(self, api: _Api) -> None:
        self.api = api


def test_a_removal_in_progress_is_retried_until_it_is_done() -> None:
    api = _Api(APIError("removal of container c1 is already in progress"),
               APIError("removal of container c1 is already in progress"))
    _remove(cast(Any, _Client(api)), "c1")
    assert api.calls == 3


def test_a_container_already_gone_is_done_at_once() -> None:
    api = _Api(NotFound("no such container"))
    _remove(cast(Any, _Client(api)), "c1")
    assert api.calls == 1


def test_one_that_cannot_be_removed_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    api = _Api(*[APIError("daemon busy")] * 1000)
    _remove(cast(Any, _Client(api)), "c0ffee0123456789", give_up_s=0.3)
    assert api.calls >= 2  # retried, then gave up
    err = capsys.readouterr().err
    assert "could not remove container c0ffee012345: daemon busy" in err
    assert "the next sandbox command removes it" in err
