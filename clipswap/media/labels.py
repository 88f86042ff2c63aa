"""The synthetic-content label every output carries in its metadata: a PNG text chunk plus XMP, a JPEG comment plus
XMP, WebP XMP, a GIF89a comment extension (spliced in after ffmpeg, which writes no GIF metadata, by copying the file
once as a byte stream), or the video container's comment/description tags; and reading it back."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from PIL import Image

from clipswap import __version__
from clipswap.atomic import atomic_path
from clipswap.media.common import MediaError, media_kind, probe

log = logging.getLogger(__name__)


LABEL = f"Synthetic image: faces were swapped by clipswap {__version__} (AI-generated face swap)."


#: IPTC digital source type for media made by a trained model.
IPTC_SYNTHETIC = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def xmp_packet(label: str) -> str:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" xmlns:xmp="http://ns.adobe.com/xap/1.0/">'
        f"<dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">{label}</rdf:li></rdf:Alt></dc:description>"
        f"<Iptc4xmpExt:DigitalSourceType>{IPTC_SYNTHETIC}</Iptc4xmpExt:DigitalSourceType>"
        f"<xmp:CreatorTool>clipswap {__version__}</xmp:CreatorTool>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )


def _gif_comment(text: str) -> bytes:
    """A GIF89a comment extension: introducer 0x21, label 0xFE, data sub-blocks of at most 255 bytes, terminator."""
    data = text.encode("utf-8")
    blocks = b"".join(bytes([len(part)]) + part for part in (data[i : i + 255] for i in range(0, len(data), 255)))
    return b"\x21\xfe" + blocks + b"\x00"


def _skip_sub_blocks(handle) -> bytes:
    """Read data sub-blocks up to and including the zero-length terminator; returns the bytes read."""
    chunks = []
    while True:
        size = handle.read(1)
        if not size:
            raise MediaError("truncated GIF extension block")
        chunks.append(size + handle.read(size[0]))
        if size[0] == 0:
            return b"".join(chunks)


def label_gif(path: str | Path, label: str = LABEL) -> None:
    """Insert `label` as a comment extension into the GIF at `path`, atomically.

    The comment goes after the header, the global colour table and any leading application extensions (the
    NETSCAPE2.0 loop block, which some decoders expect first), before the first frame; the rest of the file is
    copied as it is. Raises MediaError when the file is not a GIF.
    """
    path = Path(path)
    with open(path, "rb") as source, atomic_path(path) as temporary:
        head = source.read(13)  # signature (6) + logical screen descriptor (7)
        if len(head) < 13 or head[:6] not in (b"GIF87a", b"GIF89a"):
            raise MediaError(f"{path} is not a GIF file")
        packed = head[10]
        prefix = [b"GIF89a" + head[6:]]  # extensions need the 89a signature
        if packed & 0x80:
            prefix.append(source.read(3 * 2 ** ((packed & 0x07) + 1)))
        while True:
            position = source.tell()
            introducer = source.read(2)
            if introducer != b"\x21\xff":
                source.seek(position)
                break
            prefix.append(introducer + _skip_sub_blocks(source))  # the 11-byte identifier is one sub-block
        with open(temporary, "wb") as target:
            target.write(b"".join(prefix) + _gif_comment(label))
            shutil.copyfileobj(source, target)


def read_label(path: str | Path) -> str | None:
    """The synthetic-content label of a file written here (image metadata, GIF comment or video container tag),
    or None."""
    path = Path(path)
    if path.suffix.lower() == ".gif":
        with Image.open(path) as picture:
            value = picture.info.get("comment")
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return value if value and "clipswap" in value else None
    if media_kind(path) == "image":
        with Image.open(path) as picture:
            info = picture.info
            text = getattr(picture, "text", {}) or {}
        for value in (text.get("Description"), info.get("comment"), info.get("xmp")):
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if value and "clipswap" in value:
                return value
        return None
    match = re.search(r"^\s*(?:comment|description)\s*:\s*(.*clipswap.*)$", probe(path), re.MULTILINE | re.IGNORECASE)
    return match.group(1).strip() if match else None
