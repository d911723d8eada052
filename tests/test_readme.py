"""The README is the front door: short, and everything it tells a user to
run works. The documentation pages it points to keep the same rules.

- ``README.md`` is under 250 lines.
- Every ``python tools/...``, ``python benchmarks/...`` and
  ``python examples/...`` in a shell block of the README or the pages
  below, and every such script the README names, answers ``--help`` (from
  the repository root, with this Python), and every ``--option`` a
  command uses is one its help lists (the
  sub-command's help for options after a sub-command); every shell script
  and ``make`` target named exists, and every shell block passes
  ``bash -n``.
- Every ``configs/....py`` path named exists, and so does every relative
  link (file, and the heading of a ``#anchor``).
- No history: no issue numbers (``issue 12``, ``#12``), no phrases such as
  "this session" or "used to", and no commit hashes except on a results'
  provenance line, a line that starts with ``Produced by`` (the command
  and the commit that produced a table).
"""
import functools
import os.path as osp
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

README = 'README.md'
# the pages split out of the README: they follow its rules
DOCS = ['docs/install.md', 'docs/losses.md', 'docs/tools.md',
        'docs/evaluation.md', 'docs/classification.md', 'docs/results.md',
        'docs/performance.md', 'docs/reliability.md', 'docs/tests.md']
PAGES = [README] + DOCS
MAX_README_LINES = 250

SHELL_FENCE = re.compile(r'^```(?:bash|sh|shell|console)\s*\n(.*?)^```',
                         re.M | re.S)
SCRIPT = re.compile(r'(?:^|\s)(?:\S*/)?python[\d.]*\s+'
                    r'((?:tools|benchmarks|examples)/[\w./-]+\.py)\b(.*)')
SHELL_SCRIPT = re.compile(r'(?:^|\s)((?:tools|benchmarks)/[\w./-]+\.sh)\b')
MAKE = re.compile(r'(?:^|[\s`;(])make\s+([a-z][\w-]*)')
OPTION = re.compile(r'(?<![\w-])(--[a-zA-Z][\w-]*)')
CONFIG = re.compile(r'(?<![\w/.-])(configs/[\w./-]+\.py)\b')
LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')
HEX = re.compile(r'(?<![\w-])[0-9a-f]{7,40}(?![\w-])')
ISSUE = re.compile(r'\bissues?[\s-]*\d+|(?<![\w&])#\d+', re.I)
HISTORY_PHRASES = ('this session', 'earlier session', 'used to',
                   'no longer', 'previously', 'refactor')


def read(page):
    with open(osp.join(REPO_ROOT, page), encoding='utf-8') as f:
        return f.read()


def shell_blocks(page):
    return SHELL_FENCE.findall(read(page))


def commands(page):
    """The command lines of a page's shell blocks: continuation lines
    joined, comments dropped."""
    out = []
    for block in shell_blocks(page):
        for line in block.replace('\\\n', ' ').splitlines():
            line = re.sub(r'(^|\s)#.*$', '', line).strip()
            if line:
                out.append(line)
    return out


def invocations():
    """``(page, script, arguments)`` of every Python tool a page runs."""
    found = []
    for page in PAGES:
        for line in commands(page):
            for part in re.split(r'&&|;|\|\|', line):
                m = SCRIPT.search(part)
                if m:
                    found.append((page, m.group(1), m.group(2).split()))
    return found


@functools.lru_cache(maxsize=None)
def help_text(script, sub=None):
    args = [sys.executable, script] + ([sub] if sub else []) + ['--help']
    proc = subprocess.run(args, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, (args, proc.stderr[-2000:])
    return proc.stdout


def subcommands(help_out):
    """The sub-commands an argparse help lists as ``{a,b}``."""
    m = re.search(r'^usage:.*?\{([\w,-]+)\}', help_out, re.M | re.S)
    return set(m.group(1).split(',')) if m else set()


def slug(heading):
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r'[`*_]', '', heading.strip().lower())
    return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


def anchors(page):
    return {slug(m) for m in re.findall(r'^#{1,6}\s+(.+)$', read(page),
                                        re.M)}


# ------------------------------------------------------------------ README


def test_readme_is_short():
    lines = read(README).splitlines()
    assert len(lines) < MAX_README_LINES, len(lines)


def test_readme_runs_the_tools_it_documents():
    scripts = {s for page, s, _ in invocations() if page == README}
    # the README shows training, testing, the reports and the benchmarks
    assert {'tools/train.py', 'tools/test.py',
            'tools/longtail_report.py'} <= scripts, scripts
    text = read(README)
    assert 'examples/plain_pytorch.py' in text
    assert 'benchmarks/run.py' in read('docs/performance.md')
    assert '### In any PyTorch loop' in text


def test_readme_keeps_the_base_imports():
    """The config diff keeps the base config's imports and warns that a
    bare ``custom_imports`` replaces them."""
    text = read(README)
    assert 'configs/_base_/sar_runtime.py' in text
    assert "*_base_.custom_imports.imports, 'sar_plugin'" in text
    assert "custom_imports = dict(imports=['sar_plugin'])` *replaces*" in text
    for hook in ('RunCheckHook', 'ExactResumeHook', 'AnchorStateHook',
                 'LongTailEvalHook'):
        assert f"dict(type='{hook}'" in text, hook
    # the hooks listed are the ones the base file brings
    runtime = read('configs/_base_/sar_runtime.py')
    listed = re.findall(r"dict\(type='(\w+Hook)'", text)
    assert set(listed) == set(re.findall(r"type='(\w+Hook)'", runtime))


# ----------------------------------------------------------- every command


def named_scripts():
    """Every Python script the README names (run or pointed to) and every
    one a page runs."""
    named = set(re.findall(r'(?<![\w/.-])((?:tools|benchmarks|examples)/'
                           r'[\w./-]+\.py)\b', read(README)))
    return sorted(named | {s for _, s, _ in invocations()})


@pytest.mark.parametrize('script', named_scripts())
def test_every_tool_answers_help(script):
    assert osp.isfile(osp.join(REPO_ROOT, script)), script
    assert help_text(script).startswith('usage: ')


@pytest.mark.parametrize('page', PAGES)
def test_every_option_used_is_known(page):
    unknown = []
    for _, script, args in (i for i in invocations() if i[0] == page):
        top = help_text(script)
        subs = subcommands(top)
        sub = next((a for a in args if a in subs), None)
        before = args[:args.index(sub)] if sub else args
        after = args[args.index(sub) + 1:] if sub else []
        for words, text in ((before, top),
                            (after, help_text(script, sub) if sub else '')):
            for word in words:
                for option in OPTION.findall(word):
                    if not re.search(rf'(?<![\w-]){re.escape(option)}'
                                     r'(?![\w-])', text):
                        unknown.append(f'{script} {sub or ""} {option}')
    assert not unknown, unknown


@pytest.mark.parametrize('page', PAGES)
def test_shell_blocks_parse(page):
    for block in shell_blocks(page):
        proc = subprocess.run(['bash', '-n'], input=block, text=True,
                              capture_output=True)
        assert proc.returncode == 0, (block, proc.stderr)


@pytest.mark.parametrize('page', PAGES)
def test_scripts_and_make_targets_exist(page):
    makefile = read('Makefile')
    targets = set(re.findall(r'^([\w-]+)\s*:', makefile, re.M))
    text = read(page)
    for script in SHELL_SCRIPT.findall(text):
        assert osp.isfile(osp.join(REPO_ROOT, script)), (page, script)
    for target in MAKE.findall(text):
        assert target in targets, (page, f'make {target}')


@pytest.mark.parametrize('page', PAGES)
def test_config_paths_exist(page):
    missing = [c for c in CONFIG.findall(read(page))
               if not osp.isfile(osp.join(REPO_ROOT, c))]
    assert not missing, missing


@pytest.mark.parametrize('page', PAGES)
def test_relative_links_exist(page):
    here = osp.dirname(page)
    broken = []
    for target in LINK.findall(read(page)):
        if re.match(r'[a-z]+:', target):  # https:, mailto:
            continue
        path, _, anchor = target.partition('#')
        linked = osp.normpath(osp.join(here, path)) if path else page
        if not osp.exists(osp.join(REPO_ROOT, linked)):
            broken.append(target)
        elif anchor and linked.endswith('.md') and \
                anchor not in anchors(linked):
            broken.append(target)
    assert not broken, broken


# -------------------------------------------------------------- no history


@pytest.mark.parametrize('page', PAGES)
def test_no_history(page):
    problems = []
    for number, line in enumerate(read(page).splitlines(), 1):
        problems += [(number, m) for m in ISSUE.findall(line)]
        lower = line.lower()
        problems += [(number, p) for p in HISTORY_PHRASES if p in lower]
        if not line.lstrip().startswith('Produced by'):
            problems += [(number, h) for h in HEX.findall(line)
                         if re.search(r'\d', h) and re.search('[a-f]', h)]
    assert not problems, problems


def test_provenance_lines_name_a_command():
    """A provenance line names its command in backticks; a commit on it
    is one of this repository's when git can tell (a full clone)."""
    git = subprocess.run(['git', 'rev-parse', '--is-shallow-repository'],
                         cwd=REPO_ROOT, capture_output=True, text=True)
    check = git.returncode == 0 and git.stdout.strip() == 'false'
    for page in PAGES:
        for line in read(page).splitlines():
            if not line.startswith('Produced by'):
                continue
            assert re.search(r'`[^`]*(python|make) [^`]+`', line), line
            for commit in HEX.findall(line):
                if not check:
                    continue
                found = subprocess.run(
                    ['git', 'cat-file', '-e', f'{commit}^{{commit}}'],
                    cwd=REPO_ROOT, capture_output=True)
                assert found.returncode == 0, (page, commit)
