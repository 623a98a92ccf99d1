"""Install turtle_plugin. The OpenMMLab stack itself is installed by tools/setup_env.sh."""
import os.path as osp

from setuptools import find_packages, setup


def get_version():
    ns = {}
    with open(osp.join(osp.dirname(__file__), 'turtle_plugin', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


def parse_requirements(path):
    with open(osp.join(osp.dirname(__file__), path)) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


setup(
    name='turtle_plugin',
    version=get_version(),
    description='YOLOv7-family detectors with a keypoint branch for MMDetection / MMPose',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    python_requires='>=3.9',
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={'tests': parse_requirements('requirements/tests.txt')},
    zip_safe=False,
)
