"""The stress harness (``make test-stress``): hostile clients against real ``ftserve`` processes."""
