"""Links from a page to a file of the repository, written as relative paths (`../../configs/x.py`).

They work on GitHub as they are. MyST would make a download of a file outside the docs and call a Markdown file
outside them an unknown document; this extension turns each into a link to the file instead: on Read the Docs to
the file in the repository at the built commit, elsewhere to the file in the checkout the site was built from. A
relative path that names no file of the repository is left to MyST, which reports it (a warning, an error under
`make docs`).
"""
import os
import os.path as osp

from docutils import nodes
from sphinx import addnodes
from sphinx.util import logging

logger = logging.getLogger(__name__)


def _repo_blob_url():
    """https://github.com/OWNER/NAME/blob/REF on Read the Docs (from its build variables), else None."""
    url = os.environ.get('READTHEDOCS_GIT_CLONE_URL', '')
    ref = os.environ.get('READTHEDOCS_GIT_COMMIT_HASH') or os.environ.get('READTHEDOCS_GIT_IDENTIFIER')
    if not url or not ref:
        return None
    url = url.removesuffix('.git')
    if url.startswith('git@github.com:'):
        url = 'https://github.com/' + url[len('git@github.com:'):]
    return f'{url}/blob/{ref}' if url.startswith('https://github.com/') else None


def _resolve(app, node):
    """The repository path (relative to the root) the link names, or None if it is not a file outside the docs."""
    target = node.get('reftarget', '')
    if not target or '://' in target:
        return None
    src_dir = osp.dirname(app.env.doc2path(node['refdoc']))
    repo_root = osp.abspath(app.config.repo_root)
    candidates = []
    if osp.isabs(target):  # MyST already resolved a Markdown link, dropping its suffix
        candidates += [target, target + '.md']
    else:
        candidates.append(osp.normpath(osp.join(src_dir, target.split('#')[0])))
    for path in candidates:
        inside_docs = osp.abspath(path).startswith(osp.abspath(app.srcdir) + os.sep)
        if osp.exists(path) and not inside_docs and osp.abspath(path).startswith(repo_root + os.sep):
            return osp.relpath(path, repo_root)
    return None


def _rewrite(app, doctree):
    blob = _repo_blob_url()
    for node in list(doctree.findall(lambda n: isinstance(n, (addnodes.pending_xref, addnodes.download_reference)))):
        if node.get('reftype') != 'myst':
            continue
        rel = _resolve(app, node)
        if rel is None:
            continue
        if blob:
            uri = f'{blob}/{rel}'
        else:  # the built page sits in <outdir>/<docname>.html; the checkout is where the sources are
            page_dir = osp.dirname(osp.join(app.outdir, node['refdoc']))
            uri = osp.relpath(osp.join(app.config.repo_root, rel), page_dir)
        ref = nodes.reference('', '', internal=False, refuri=uri)
        ref += node.children
        node.replace_self(ref)


def setup(app):
    app.add_config_value('repo_root', osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..')), 'env')
    app.connect('doctree-read', _rewrite)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
