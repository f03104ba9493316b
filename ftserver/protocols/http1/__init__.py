# TEMP shim until the protocols branch lands
from ftserver.protocols.http11 import HTTP_100_CONTINUE, HTTP11Connection, reason_phrase  # noqa
from ftserver.protocols.events import Request as H1Request  # noqa
