#!/bin/sh
# certbot deploy hook: copy a renewed certificate where the relay (user molehill) can read it,
# then tell a running relay to load it (SIGHUP; connections stay up).
# Install: sudo install -D -m 0755 deploy/certbot-deploy-hook.sh \
#              /etc/letsencrypt/renewal-hooks/deploy/molehill-relay.sh
# certbot runs it after the first issuance (given as --deploy-hook) and after every renewal,
# with RENEWED_LINEAGE set to the certificate's folder.
set -eu
case "$RENEWED_LINEAGE" in
*/tunnels.example.com) ;;   # only the relay's certificate
*) exit 0 ;;
esac
install -d -o root -g molehill -m 0750 /etc/molehill/tls
install -o root -g molehill -m 0640 "$RENEWED_LINEAGE/fullchain.pem" /etc/molehill/tls/fullchain.pem
install -o root -g molehill -m 0640 "$RENEWED_LINEAGE/privkey.pem" /etc/molehill/tls/privkey.pem
systemctl try-reload-or-restart molehill-relay   # nothing if it is not running yet
