"""The HTTP/1.1 layer (sans-I/O): request and response framing, routing names, error pages."""
