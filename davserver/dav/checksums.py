"""The ``oc:checksums`` live property: the whole-file SHA-256 the server keeps.

ownCloud and Nextcloud servers answer ``<oc:checksums><oc:checksum>SHA1:…
MD5:…</oc:checksum></oc:checksums>`` in PROPFIND; clients read the types they
know from that one space-separated list. drivegate keeps one sum per version,
a SHA-256 (``manifests.sha256``, known when it was cheap to compute: see
docs/architecture.md, "Commit"), so a file shows ``SHA256:<hex>`` when its
sum is known and has no such property otherwise. Nothing is hashed to answer:
the sum comes with the listing's one query. Nextcloud's desktop client knows
the ``SHA256`` type; rclone's WebDAV backend (1.60 to today) reads only
``SHA1`` and ``MD5`` there, so ``rclone hashsum``/``md5sum`` still have no sum
to show (see README, "rclone"). The property is protected: a PROPPATCH of it
answers 403.
"""

from __future__ import annotations

from lxml import etree

OC_NS = "http://owncloud.org/ns"
CHECKSUMS = f"{{{OC_NS}}}checksums"
CHECKSUM = f"{{{OC_NS}}}checksum"


def checksum_list(sha256: str | None) -> str | None:
    """The ``oc:checksum`` text for a file whose SHA-256 is ``sha256`` (None: unknown)."""
    return None if sha256 is None else f"SHA256:{sha256}"


def rendered(sha256: str | None) -> str | None:
    """The property as an XML fragment (for ``davserver.dav.propxml``), or None."""
    text = checksum_list(sha256)
    if text is None:
        return None
    return f'<oc:checksums xmlns:oc="{OC_NS}"><oc:checksum>{text}</oc:checksum></oc:checksums>'


def element(sha256: str | None) -> etree._Element | None:
    """The property as an element (for WsgiDAV's own PROPFIND), or None."""
    text = checksum_list(sha256)
    if text is None:
        return None
    checksums = etree.Element(CHECKSUMS, nsmap={"oc": OC_NS})
    etree.SubElement(checksums, CHECKSUM).text = text
    return checksums
