"""``make docs`` builds the site with warnings as errors, and the build does fail on a broken link."""
import os
import os.path as osp
import shutil
import subprocess
import sys

from .snippets import DOCS, ROOT


def sphinx(src, out):
    return subprocess.run([sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-b', 'html', src, out],
                          capture_output=True, text=True, timeout=300)


def test_the_site_builds_without_warnings(tmp_path):
    res = sphinx(DOCS, str(tmp_path / 'html'))
    assert res.returncode == 0, res.stderr[-5000:]
    pages = {f for f in os.listdir(tmp_path / 'html') if f.endswith('.html')}
    assert {'index.html', 'get_started.html', 'own_images.html', 'api.html', 'faq.html'} <= pages
    api = (tmp_path / 'html' / 'api.html').read_text()
    assert 'mmsimclr.get_model' in api and 'Parameters' in api  # autodoc read the docstrings


def test_links_to_repository_files_work_and_broken_links_fail_the_build(tmp_path):
    """A page links a repository file by its path relative to the page (as on GitHub): the site links the file; a
    path that names nothing, a missing page or a missing anchor stops the build."""
    src = tmp_path / 'docs' / 'en'
    src.mkdir(parents=True)
    shutil.copy(osp.join(DOCS, 'conf.py'), src)
    shutil.copytree(osp.join(DOCS, '_ext'), src / '_ext')
    (src / 'index.md').write_text('# Home\n\n```{toctree}\npage\n```\n')
    repo = tmp_path  # the sandbox is the "repository": docs/en is two levels below it
    (repo / 'configs').mkdir()
    (repo / 'configs' / 'c.py').write_text('x = 1\n')
    (repo / 'README.md').write_text('# readme\n')
    good = '# Page\n\n## A section\n\n[c](../../configs/c.py), [readme](../../README.md), [s](#a-section)\n'
    (src / 'page.md').write_text(good)
    res = sphinx(str(src), str(tmp_path / 'out'))
    assert res.returncode == 0, res.stderr
    html = (tmp_path / 'out' / 'page.html').read_text()
    assert 'href="../../../configs/c.py"' in html.replace('../../../../', '../../../') or 'configs/c.py"' in html
    assert 'README.md"' in html
    for bad in ('[x](../../configs/nope.py)', '[x](nope.md)', '[x](#no-such-section)', '[x](index.md#nope)'):
        (src / 'page.md').write_text(good + bad + '\n')
        res = sphinx(str(src), str(tmp_path / 'out_bad'))
        assert res.returncode != 0 and 'xref_missing' in res.stderr, (bad, res.stderr)
