#!/bin/bash
# End-to-end: GSSAPI (Kerberos) through Postfix and Dovecot, with a private
# KDC (tests/servers/kdc.sh). auth on uses the ticket when there is one and
# no password; without a ticket nothing is sent for GSSAPI and auth on goes
# on to a password mechanism; a forced GSSAPI says what is missing.
# (GS2-KRB5 is chosen the same way, but Dovecot 2.3 does not offer it.)
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

POSTBOTE=${POSTBOTE:-$top_builddir/src/postbote}
for tool in krb5kdc kinit; do
	command -v "$tool" >/dev/null || { echo "# SKIP: $tool not installed"; exit 77; }
done
kdc_dir=$E2E_TMP/kdc
"$top_srcdir/tests/servers/kdc.sh" start "$kdc_dir" </dev/null >/dev/null || exit 99
trap_add '"$top_srcdir/tests/servers/kdc.sh" stop "$kdc_dir"'
KDC_ENV=$kdc_dir/kdc.env servers_start
set -a
. "$kdc_dir/kdc.env"
set +a
work=$E2E_TMP

printf 'From: tester@example.org\nSubject: kerberos\n\nsent with a ticket\n' > "$work/msg.eml"
# conf [extra lines...]: the Kerberos principal's short name as user, no
# password unless given.
conf() {
	{
		printf 'account default\nhost localhost\nport %s\n' "$SUBMISSION_PORT"
		printf 'tls_trust_file %s\nfrom tester@example.org\nqueue off\n' "$CA_FILE"
		printf '%s\n' "$@"
	} > "$work/conf"
	chmod 600 "$work/conf"
}
send() {
	setsid -w "$POSTBOTE" -C "$work/conf" -v someone@example.net < "$work/msg.eml"
}

kinit -k -t "$KRB5_USER_KEYTAB" "$KRB5_USER" </dev/null || exit 99

conf 'user tester'
clear_mail
assert_exit 0 "auth on with a ticket and no password: GSSAPI" send 2> "$work/err"
assert_contains "GSSAPI was used" "$work/err" "--> AUTH GSSAPI"
if wait_for_mail 1 && grep -q "sasl_method=GSSAPI, sasl_username=tester@example.org" "$POSTFIX_LOG"; then
	ok "Postfix logged the Kerberos login and delivered"
else
	not_ok "Postfix logged the Kerberos login and delivered" "$(tail -n 5 "$POSTFIX_LOG")"
fi

conf 'auth gssapi'
clear_mail
assert_exit 0 "auth gssapi without user (the principal comes from the ticket)" send 2> "$work/err"

kdestroy
conf 'auth gssapi'
assert_exit 77 "forced GSSAPI without a ticket" send 2> "$work/err"
assert_contains "says that a ticket is missing" "$work/err" \
	"GSSAPI: no usable Kerberos ticket for this server (see klist; kinit gets one)"
assert_not_contains "and sends no AUTH" "$work/err" "--> AUTH"

conf "user $SMTP_USER" "password $SMTP_PASSWORD"
clear_mail
assert_exit 0 "no ticket but a password: SCRAM-SHA-256" send 2> "$work/err"
assert_contains "the password mechanism was used" "$work/err" "--> AUTH SCRAM-SHA-256"
assert_not_contains "GSSAPI was not tried on the wire" "$work/err" "--> AUTH GSSAPI"

conf 'user tester'
assert_exit 77 "no ticket and no password: a clear error" send 2> "$work/err"
assert_contains "naming the missing ticket" "$work/err" "no usable Kerberos ticket"
assert_contains "and the missing password" "$work/err" "SCRAM-SHA-256 needs a password"

finish
