"""Which network interface a rank's collectives use: the one holding the node's own address.

Gloo binds to the address its host name resolves to and falls back to loopback when the name
does not resolve (hosts in network namespaces, some cloud images), so ranks on other nodes are
refused. The controller knows each node's address; the rank looks up its interface here.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from collections.abc import MutableMapping

SIOCGIFADDR = 0x8915
NODE_ADDRESS_ENV = "REPRISE_NODE_ADDRESS"


def ipv4_of(interface: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(
                sock.fileno(), SIOCGIFADDR, struct.pack("256s", interface.encode()[:15])
            )
        except OSError:
            return None  # no IPv4 address on this interface
    return socket.inet_ntoa(packed[20:24])


def interface_for(address: str) -> str | None:
    """The local interface whose IPv4 address is `address` (a host name is resolved first)."""
    try:
        wanted = socket.gethostbyname(address)
    except OSError:
        return None
    for _index, name in socket.if_nameindex():
        if ipv4_of(name) == wanted:
            return name
    return None


def bind_collectives(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Set GLOO_SOCKET_IFNAME from REPRISE_NODE_ADDRESS unless the user chose one already."""
    address = environ.get(NODE_ADDRESS_ENV)
    if not address or environ.get("GLOO_SOCKET_IFNAME"):
        return environ.get("GLOO_SOCKET_IFNAME")
    interface = interface_for(address)
    if interface is not None:
        environ["GLOO_SOCKET_IFNAME"] = interface
    return interface
