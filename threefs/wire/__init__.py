"""Wire schemas: every message that crosses the network, as msgspec structs (MessagePack).

Servers and clients depend on these modules, never on each other. One module per service
(``threefs/wire/<service>.py``); service ids live in ``threefs.wire.ids``.
"""

from threefs.wire.common import Empty, MethodSpec, ServiceSpec
from threefs.wire.envelope import Envelope, FrameKind
from threefs.wire.ids import RETIRED_SERVICE_IDS, ServiceId

__all__ = ["Empty", "Envelope", "FrameKind", "MethodSpec", "RETIRED_SERVICE_IDS", "ServiceId", "ServiceSpec"]
