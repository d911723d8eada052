"""A report as a list of blocks, rendered to Markdown and to one
self-contained HTML file (pictures embedded as base64 data URIs)."""
import base64
import html
import os.path as osp
import re
from dataclasses import dataclass
from typing import List, Sequence, Tuple, Union


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass
class Image:
    path: str  # absolute path of the PNG
    caption: str


Block = Union[Heading, Paragraph, Table, Image]


def _md_row(cells: Sequence[str]) -> str:
    """``| a | b |``; an empty cell is ``| |``."""
    return '|' + '|'.join(f' {c} ' if c else ' ' for c in cells) + '|'


def to_markdown(blocks: List[Block], base_dir: str) -> str:
    """Markdown; images linked relative to ``base_dir``."""
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append('#' * b.level + ' ' + b.text)
        elif isinstance(b, Paragraph):
            out.append(b.text)
        elif isinstance(b, Table):
            out.append(_md_row(b.header))
            out.append('|' + '---|' * len(b.header))
            out.extend(_md_row(row) for row in b.rows)
        elif isinstance(b, Image):
            rel = osp.relpath(b.path, base_dir)
            out.append(f'![{b.caption}]({rel})\n\n*{b.caption}*')
        out.append('')
    return '\n'.join(out)


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;
max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.pos{color:#17803d}.neg{color:#b3261e}
figure{margin:1em 0 2em}img{max-width:100%}
figcaption{font-style:italic;color:#555}
code{background:#f3f3f3;padding:0 3px}
"""


def _inline(text: str) -> str:
    """Escape, then render the little Markdown the report uses: **bold**,
    `code`, and a trailing ``(+x.xx)`` / ``(-x.xx)`` delta coloured."""
    s = html.escape(text)
    s = re.sub(r'\*\*(.+?)\*\*', r'<b>\1</b>', s)
    s = re.sub(r'`(.+?)`', r'<code>\1</code>', s)
    s = re.sub(r'\((\+\d[\d.]*)\)', r'(<span class="pos">\1</span>)', s)
    s = re.sub(r'\((-\d[\d.]*)\)', r'(<span class="neg">\1</span>)', s)
    return s


def to_html(blocks: List[Block], title: str) -> str:
    """One HTML file with the PNGs embedded: no external reference."""
    out = ['<!DOCTYPE html>', '<html><head><meta charset="utf-8">',
           f'<title>{html.escape(title)}</title>',
           f'<style>{_CSS}</style></head><body>']
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f'<h{b.level}>{_inline(b.text)}</h{b.level}>')
        elif isinstance(b, Paragraph):
            out.append(f'<p>{_inline(b.text)}</p>')
        elif isinstance(b, Table):
            out.append('<table><thead><tr>' + ''.join(
                f'<th>{_inline(h)}</th>' for h in b.header) +
                '</tr></thead><tbody>')
            for row in b.rows:
                out.append('<tr>' + ''.join(f'<td>{_inline(c)}</td>'
                                            for c in row) + '</tr>')
            out.append('</tbody></table>')
        elif isinstance(b, Image):
            with open(b.path, 'rb') as f:
                data = base64.b64encode(f.read()).decode('ascii')
            out.append(f'<figure><img alt="{html.escape(b.caption)}" '
                       f'src="data:image/png;base64,{data}">'
                       f'<figcaption>{html.escape(b.caption)}</figcaption>'
                       '</figure>')
    out.append('</body></html>')
    return '\n'.join(out)


def write_documents(blocks: List[Block], out_dir: str,
                    stem: str) -> Tuple[str, str]:
    """Write ``<stem>.md`` and ``<stem>.html`` to ``out_dir``; the HTML title
    is the first block's text.

    Returns:
        tuple: The Markdown and HTML paths.
    """
    md_path = osp.join(out_dir, stem + '.md')
    html_path = osp.join(out_dir, stem + '.html')
    with open(md_path, 'w') as f:
        f.write(to_markdown(blocks, out_dir))
    with open(html_path, 'w') as f:
        f.write(to_html(blocks, blocks[0].text))
    return md_path, html_path
