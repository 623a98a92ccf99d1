"""Suite-wide fixtures."""
import pytest
from mmengine.registry import DefaultScope

import turtle_plugin  # noqa: F401  registers the plugin's modules, as custom_imports does


@pytest.fixture(autouse=True)
def _isolated_default_scope():
    """Each test starts without the default scope that an earlier test's runner or
    ``init_default_scope`` left behind (it is process-global in MMEngine), so a registry's
    ``build`` looks in that registry unless the test sets a scope itself."""
    saved = DefaultScope._instance_dict.copy()
    DefaultScope._instance_dict.clear()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)
