"""Names that tools turn into paths stay inside the tool's output dir."""
import os


def check_dir_name(name: str, option: str = '--names') -> str:
    """``name`` when it is a plain file or directory name, else raise.

    A name with a path separator, a leading dot (``.``, ``..``, hidden
    names) or nothing in it would put a tool's output outside its ``--out``
    or ``--work-dir`` (``osp.join(out, '../../x')``).

    Raises:
        ValueError: Naming ``option`` and the name.
    """
    seps = [os.sep] + ([os.altsep] if os.altsep else []) + ['/']
    if not isinstance(name, str) or not name.strip() or \
            name.startswith('.') or any(sep in name for sep in seps) or \
            '\0' in name:
        raise ValueError(
            f'{option}: {name!r} cannot be a file or directory name inside '
            'the output dir (no path separators, no leading dot, not empty)')
    return name
