from ftserver.protocols.h11_adapter import H11Connection  # noqa
