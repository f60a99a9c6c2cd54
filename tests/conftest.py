"""Plugins shared by every test package: the real S3 server (``s3_server``, ``s3_bucket``)."""

pytest_plugins = ["tests.s3server"]
