"""Stand-in executables for tests of launch scripts and device probes (fake ``srun``, ``nvidia-smi``, ``python``)."""
import stat


def write_exe(path, text: str) -> str:
    """Write ``text`` to ``path`` (a ``pathlib.Path``), make it executable for its owner; returns the path."""
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)
