"""The background service: tunnels that outlive the dashboard; its Unix-socket control channel."""
