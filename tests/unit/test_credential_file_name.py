"""Credential file names are built only from safe ids: nothing that could leave the directory."""

from __future__ import annotations

import pytest

from gwms_tasks.errors import PermanentError
from gwms_tasks.services.submit import credential_file_name


def test_a_safe_id_names_the_file_as_glideinwms_does() -> None:
    assert credential_file_name("fe.main", "tok-1") == "credential_fe.main_tok-1"


@pytest.mark.parametrize("bad", ["tok\n", "../x", "a/b", "", "tok id"])
def test_an_unsafe_id_is_refused(bad: str) -> None:
    with pytest.raises(PermanentError, match="unsafe credential id"):
        credential_file_name("fe.main", bad)
