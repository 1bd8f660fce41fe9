#!/bin/sh
# Entry point of a Reprise node (run under tini): install the SSH host key and authorized key the
# provider copied into /etc/reprise/ssh before start, then run sshd in the foreground.
# Nothing secret is generated here: the provider made the keys, so it knows the host key to trust.
set -eu
KEYS=/etc/reprise/ssh

for f in ssh_host_ed25519_key ssh_host_ed25519_key.pub authorized_keys; do
  if [ ! -s "$KEYS/$f" ]; then
    echo "reprise-node: $KEYS/$f is missing; the provider copies it into the container before start" >&2
    exit 64
  fi
done
# sshd refuses keys that others can read (StrictModes), so set owner and mode whatever the copy had.
install -m 0600 -o root -g root "$KEYS/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
install -m 0644 -o root -g root "$KEYS/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
install -d -m 0700 -o root -g root /root/.ssh
install -m 0600 -o root -g root "$KEYS/authorized_keys" /root/.ssh/authorized_keys
install -d -m 0755 /run/sshd

/usr/sbin/sshd -t -f /etc/ssh/sshd_config
exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
