"""Object names that Kubernetes accepts, made from any username and kernel id.

The provisioner names a kernel's pod (and, when the gateway creates one, its
namespace) with :func:`kernel_resource_name`.  Enterprise Gateway names them
``<username>-<kernel_id>``, lowercased with every run of characters outside
``[0-9a-z]`` turned into ``-``; it never shortens the result, so a long or
exotic username made an invalid name (EG issue #553).  We keep EG's name
whenever it is already valid and could only have come from one input, so
tooling that expects ``alice-<uuid>`` keeps working, and otherwise shorten the
readable part and append a hash of the original inputs.

Rules for DNS-1123 labels and subdomains follow
k8s.io/apimachinery/pkg/util/validation/validation.go (``IsDNS1123Label``,
``IsDNS1123Subdomain``).
"""

from __future__ import annotations

import hashlib
import json
import re

DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
HASH_LENGTH = 8
"""Hex digits of the hash suffix: 32 bits, as kubespawner's ``safe_slug`` uses."""

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_LABEL)
_DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_NOT_SLUG = re.compile(r"[^0-9a-z]+")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# What a hashed name ends with.  A readable name that ends the same way is
# hashed too, so no readable name can equal a hashed one.
_HASHED_TAIL = re.compile(rf"(?:^|-)[0-9a-f]{{{HASH_LENGTH}}}\Z")


def is_dns1123_label(value: object) -> bool:
    """Whether ``value`` is a valid DNS-1123 label: what Kubernetes requires of namespace and container names."""
    return (
        isinstance(value, str)
        and len(value) <= DNS1123_LABEL_MAX_LENGTH
        and _DNS1123_LABEL.fullmatch(value) is not None
    )


def is_dns1123_subdomain(value: object) -> bool:
    """Whether ``value`` is a valid DNS-1123 subdomain: what Kubernetes requires of most object names."""
    return (
        isinstance(value, str)
        and len(value) <= DNS1123_SUBDOMAIN_MAX_LENGTH
        and _DNS1123_SUBDOMAIN.fullmatch(value) is not None
    )


def short_hash(*parts: str) -> str:
    """A short hex digest of ``parts`` that tells ``("a-b", "c")`` from ``("a", "b-c")``.

    The parts are encoded as a JSON list (ASCII only), so every tuple of
    strings, including ones with unpaired surrogates, has one encoding.
    """
    encoded = json.dumps(list(parts), ensure_ascii=True).encode("ascii")
    return hashlib.sha256(encoded).hexdigest()[:HASH_LENGTH]


def slug(text: str) -> str:
    """EG's sanitising: lowercase, each run of characters outside ``[0-9a-z]`` becomes ``-``, no ``-`` at the ends."""
    return _NOT_SLUG.sub("-", text.lower()).strip("-")


def _hashed(readable: str, digest: str, max_length: int) -> str:
    """``readable`` cut so that ``-<digest>`` fits in ``max_length``, then the digest appended."""
    room = max_length - len(digest) - 1
    head = readable[: max(room, 0)].rstrip("-")
    return f"{head}-{digest}" if head else digest


def safe_label(*parts: str, max_length: int = DNS1123_LABEL_MAX_LENGTH) -> str:
    """A DNS-1123 label of at most ``max_length`` characters naming the tuple ``parts``.

    Used for names the gateway derives from several strings (companion objects
    of a kernel pod, for instance).  The parts joined with ``-`` are returned
    unchanged when that is already a valid label and cannot be read two ways:
    every part is non-empty and left as it is by :func:`slug`, only the last
    part may contain ``-``, and the result does not end like a hash suffix.
    Otherwise the slug of the joined parts is shortened and ``-<hash>`` of the
    original parts appended.

    Distinct tuples of the same length give distinct labels (for hashed ones,
    up to a 32-bit hash collision).
    """
    if not HASH_LENGTH <= max_length <= DNS1123_LABEL_MAX_LENGTH:
        raise ValueError(f"max_length must be between {HASH_LENGTH} and {DNS1123_LABEL_MAX_LENGTH}, not {max_length}")
    if not parts:
        raise ValueError("safe_label needs at least one part")
    joined = "-".join(parts)
    readable = (
        all(part and slug(part) == part for part in parts)
        and not any("-" in part for part in parts[:-1])
        and len(joined) <= max_length
        and not _HASHED_TAIL.search(joined)
    )
    if readable:
        return joined
    return _hashed(slug(joined), short_hash(*parts), max_length)


def kernel_resource_name(username: str, kernel_id: str) -> str:
    """The name of a kernel's pod and, by default, of the namespace the gateway creates for it.

    Called by the provisioner at launch (and again at restart, which must give
    the same name).  Always a DNS-1123 label; distinct for distinct
    ``(username, kernel_id)`` pairs.

    * EG's name ``<username>-<kernel_id>`` is kept when the kernel id is a
      canonical (lowercase) uuid, sanitising would not change the name and it
      fits in 63 characters: ``alice-5e755458-a114-4215-96b7-bcb016fc7b62``.
      The uuid's fixed shape at the end makes such a name unambiguous.
    * Otherwise (``Alice``, ``a.b``, an empty or 200-character username) the
      name is ``<first 17 characters of the username's slug>-<kernel_id>-<hash>``
      with a hash of the original pair, so ``Alice`` and ``alice`` (or ``a.b``
      and ``a-b``) never share a name.  A kernel id that is not a canonical
      uuid is not kept whole: the slug of the pair is cut to fit the hash.

    A readable name ends with the uuid's 12-digit group and a hashed one with
    ``-`` and 8 hex digits, so the two forms never meet.
    """
    if _CANONICAL_UUID.fullmatch(kernel_id):
        eg_name = f"{username}-{kernel_id}"
        if len(eg_name) <= DNS1123_LABEL_MAX_LENGTH and slug(eg_name) == eg_name:
            return eg_name
        digest = short_hash(username, kernel_id)
        room = DNS1123_LABEL_MAX_LENGTH - len(kernel_id) - len(digest) - 2
        head = slug(username)[:room].rstrip("-")
        return f"{head}-{kernel_id}-{digest}" if head else f"{kernel_id}-{digest}"
    return _hashed(slug(f"{username}-{kernel_id}"), short_hash(username, kernel_id), DNS1123_LABEL_MAX_LENGTH)
