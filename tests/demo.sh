#!/bin/bash
# Demo: start a private Postfix + Dovecot on loopback, pipe a message into
# postbote over STARTTLS with AUTH, show the SMTP dialogue (-v) and the
# message as the server delivered it, then stop the servers.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir/build}
POSTBOTE=${POSTBOTE:-$top_builddir/src/postbote}

export top_srcdir top_builddir
. "$top_srcdir/tests/e2e/lib.sh"

echo "== starting Postfix (submission with STARTTLS, SASL via Dovecot) on 127.0.0.1"
servers_start || exit $?
conf=$(mktemp "${TMPDIR:-/tmp}/postbote-demo.XXXXXX")
trap_add "rm -f '$conf'"
cat > "$conf" <<CONF
# What a user writes for their provider; here the provider is local.
account demo
host localhost
port $SUBMISSION_PORT
tls on
tls_starttls on
tls_trust_file $CA_FILE
auth on
user $SMTP_USER
password $SMTP_PASSWORD
from $SMTP_USER
CONF
chmod 600 "$conf"
echo "== configuration (password shown here only because it is a throwaway test account):"
sed 's/^/   /' "$conf"
echo
echo "== printf ... | postbote -v -C CONF -i friend@example.net"
printf 'Subject: Hello from postbote\n\nIt works: this message went over STARTTLS with AUTH.\n' |
	"$POSTBOTE" -v -C "$conf" -i friend@example.net
status=$?
echo "== postbote exited with status $status"
[ $status -eq 0 ] || exit $status
wait_for_mail 1 || exit 1
echo
echo "== the message as delivered into the server's Maildir:"
sed 's/^/   /' "$(mail_files | head -n1)"
