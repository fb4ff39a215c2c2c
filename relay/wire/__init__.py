"""The wire layer (sans-I/O): frame codec, stream state machine and session; no sockets here."""
