"""Test-only start-up hook: make aioice offer 127.0.0.1 as its host candidate.

Put this folder on ``PYTHONPATH`` of a server started inside a loopback-only network
namespace (TESTING.md): aioice leaves loopback out of its candidates, and there is no
other interface there. The product itself never does this.
"""

import aioice.ice


def _loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


aioice.ice.get_host_addresses = _loopback_only
