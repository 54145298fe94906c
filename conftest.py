"""Root conftest: the rig's fixtures are a pytest plugin in fixtures/."""

pytest_plugins = ["fixtures.plugin"]
