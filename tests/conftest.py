"""Plugins shared by every test package: the real S3 server (``s3_server``, ``s3_bucket``);
and a config folder of the test run's own, so that no test (nor a command it starts) reads
or writes the sign-in profiles of the person running the tests (``tahub login``)."""

from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.s3server", "tests.sparkcluster"]


@pytest.fixture(scope="session", autouse=True)
def _own_config_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
        for name in ("TAHUB_SESSIONS_FILE", "TAHUB_PROFILE"):
            patch.delenv(name, raising=False)
        yield
