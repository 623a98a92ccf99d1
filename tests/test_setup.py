"""setup.py packages what the package is made of, and nothing that does not exist."""
import glob
import runpy
from pathlib import Path

import setuptools

REPO = Path(__file__).resolve().parents[1]


def _setup_kwargs(monkeypatch):
    """The arguments setup.py hands to ``setuptools.setup``, without building anything."""
    calls = []
    monkeypatch.setattr(setuptools, 'setup', lambda **kwargs: calls.append(kwargs))
    monkeypatch.chdir(REPO)  # find_packages() and README.md are relative to the working dir
    runpy.run_path(str(REPO / 'setup.py'), run_name='__main__')
    assert len(calls) == 1
    return calls[0]


def test_every_subpackage_is_packaged_and_nothing_else(monkeypatch):
    packages = _setup_kwargs(monkeypatch)['packages']
    on_disk = sorted('.'.join(p.parent.relative_to(REPO).parts)
                     for p in (REPO / 'turtle_plugin').rglob('__init__.py'))
    assert sorted(packages) == on_disk


def test_package_data_patterns_match_files(monkeypatch):
    """Every package_data glob names files that exist (``metainfo/*.py`` named a folder the
    package does not have)."""
    kwargs = _setup_kwargs(monkeypatch)
    for package, patterns in kwargs.get('package_data', {}).items():
        root = REPO.joinpath(*package.split('.'))
        for pattern in patterns:
            assert glob.glob(str(root / pattern)), f'{package}: {pattern} matches no file'
