"""Sphinx configuration of the mmsimclr docs (MyST Markdown; built by `make docs` with warnings as errors)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '_ext'))

project = 'mmsimclr'
author = 'the mmsimclr authors'
copyright = '2026, the mmsimclr authors'
# the package's version, read from its file (importing mmsimclr is autodoc's job, not the configuration's)
_version = {'__version__': ''}
_version_file = os.path.join(HERE, '..', '..', 'mmsimclr', 'version.py')
if os.path.isfile(_version_file):  # (tests build a copy of this configuration outside the checkout)
    with open(_version_file, encoding='utf-8') as f:
        exec(f.read(), _version)
release = version = _version['__version__']

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'repo_links',
]
source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}
exclude_patterns = ['_build']
myst_heading_anchors = 3
myst_enable_extensions = ['colon_fence']
html_theme = 'furo'
html_title = f'mmsimclr {release}'
