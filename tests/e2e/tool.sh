#!/bin/bash
# End-to-end: the tools for people testing a mail setup by hand:
# --serverinfo against Postfix (STARTTLS, implicit TLS, a wrong-name
# certificate), --pretend, --version. Nothing may be sent by any of them.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

servers_start || exit $?
POSTBOTE=${POSTBOTE:-$top_builddir/src/postbote}
work=$(mktemp -d "${TMPDIR:-/tmp}/postbote-tool.XXXXXX")
trap_add "rm -rf '$work'"
conf() { # NAME PORT STARTTLS
	cat > "$work/$1.conf" <<CONF
account $1
host localhost
port $2
tls_starttls $3
tls_trust_file $CA_FILE
user $SMTP_USER
password $SMTP_PASSWORD
from $SMTP_USER
maildomain example.org
queue off
CONF
	chmod 600 "$work/$1.conf"
}
conf sub "$SUBMISSION_PORT" on
conf smtps "$SMTPS_PORT" off
conf wrong "$WRONGNAME_PORT" on
clear_mail

"$POSTBOTE" -C "$work/sub.conf" --serverinfo > "$work/si.out" 2> "$work/si.err"
rc=$?
if [ $rc -eq 0 ] && grep -q '^greeting:' "$work/si.out" && grep -q '^EHLO before TLS:' "$work/si.out" &&
	grep -q '^  STARTTLS$' "$work/si.out" && grep -q 'protocol: (TLS1\.[23])' "$work/si.out" &&
	grep -q 'subject: .*CN=localhost' "$work/si.out" && grep -q 'issuer: ' "$work/si.out" &&
	grep -qE 'SHA-256: +([0-9A-F]{2}:){31}[0-9A-F]{2}$' "$work/si.out" &&
	grep -q 'valid: .* to ' "$work/si.out" &&
	grep -q 'verification: OK for localhost' "$work/si.out" &&
	grep -q '^offered before TLS: AUTH (none)' "$work/si.out" &&
	grep -q '^offered under TLS: AUTH PLAIN LOGIN' "$work/si.out" &&
	grep -q "size limit $MESSAGE_SIZE_LIMIT bytes" "$work/si.out"; then
	ok "--serverinfo shows greeting, EHLO before and under TLS, chain, verification, AUTH, SIZE"
else
	not_ok "--serverinfo over STARTTLS" "exit $rc: $(cat "$work/si.out" "$work/si.err")"
fi

"$POSTBOTE" -C "$work/smtps.conf" -S > "$work/si2.out" 2>&1
if grep -q 'verification: OK for localhost' "$work/si2.out" && grep -q '^EHLO under TLS:' "$work/si2.out" &&
	! grep -q '^EHLO before TLS:' "$work/si2.out"; then
	ok "-S over implicit TLS"
else
	not_ok "-S over implicit TLS" "$(cat "$work/si2.out")"
fi

"$POSTBOTE" -C "$work/wrong.conf" --serverinfo > "$work/si3.out" 2>&1
if grep -q 'verification: FAILED for localhost' "$work/si3.out" && grep -q 'CN=wrong.example\|wrong.example' "$work/si3.out"; then
	ok "--serverinfo shows a certificate that does not verify, and why"
else
	not_ok "--serverinfo shows a certificate that does not verify" "$(cat "$work/si3.out")"
fi

printf 'From: root\nTo: Boss <boss>\nBcc: hidden@example.net\nSubject: pretend\n\nbody\n' |
	"$POSTBOTE" -C "$work/sub.conf" --pretend -t -i > "$work/pr.out" 2> "$work/pr.err"
rc=$?
if [ $rc -eq 0 ] && grep -q '^account: *sub (localhost port' "$work/pr.out" &&
	grep -q "^sender: *<$SMTP_USER>" "$work/pr.out" &&
	grep -q '^recipient: *<boss@example.org>' "$work/pr.out" &&
	grep -q '^recipient: *<hidden@example.net>' "$work/pr.out" &&
	grep -q '^(removed) *Bcc: hidden@example.net' "$work/pr.out" &&
	grep -q '^(rewritten) *To: Boss <boss@example.org>' "$work/pr.out" &&
	grep -q '^(added) *Date: ' "$work/pr.out" && grep -q '^(added) *Message-ID: ' "$work/pr.out" &&
	grep -q '^auth: *the strongest' "$work/pr.out"; then
	ok "--pretend shows account, envelope, marked headers and mechanism"
else
	not_ok "--pretend shows account, envelope, marked headers and mechanism" "exit $rc: $(cat "$work/pr.out" "$work/pr.err")"
fi

sleep 1
if [ -z "$(mail_files)" ] && ! grep -q 'from=<' "$POSTFIX_LOG"; then
	ok "--serverinfo and --pretend sent nothing"
else
	not_ok "--serverinfo and --pretend sent nothing" "$(mail_files)"
fi

# logfile: one line per message, nothing secret.
cp "$work/sub.conf" "$work/log.conf"
printf 'logfile %s\nsyslog off\n' "$work/postbote.log" >> "$work/log.conf"
clear_mail
printf 'Subject: logged\n\nbody\n' | "$POSTBOTE" -C "$work/log.conf" -i one@example.net two@example.net
wait_for_mail 2
if [ "$(wc -l < "$work/postbote.log")" -eq 1 ] &&
	grep -qE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}[+-][0-9]{4} host=localhost account=sub from=$SMTP_USER recipients=one@example.net,two@example.net size=[0-9]+ status=0 reply=.*queued as" "$work/postbote.log" &&
	! grep -qF "$SMTP_PASSWORD" "$work/postbote.log" && [ "$(stat -c %a "$work/postbote.log")" = 600 ]; then
	ok "logfile: one line per message with time, account, sender, recipients, size, reply"
else
	not_ok "logfile: one line per message" "$(cat "$work/postbote.log")"
fi
sed 's/^port .*/port 1/; s/^queue off/queue on/' "$work/log.conf" > "$work/log2.conf"
printf 'queue_dir %s/q\n' "$work" >> "$work/log2.conf"
chmod 600 "$work/log2.conf"
printf 'Subject: q\n\nbody\n' | "$POSTBOTE" -C "$work/log2.conf" -i one@example.net 2> /dev/null
if grep -q 'status=0 queued=[0-9A-Za-z.-]* reply=.*cannot connect' "$work/postbote.log"; then
	ok "logfile: a queued message is logged with its queue id"
else
	not_ok "logfile: a queued message is logged with its queue id" "$(cat "$work/postbote.log")"
fi

# --subject / --attach: a correct MIME message from a body on stdin.
clear_mail
head -c 3000 /dev/urandom > "$work/blob.bin"
printf 'a,b\n1,2\n' > "$work/Tabelle ä.csv"
printf 'Hallo,\nhier die Daten – Grüße.\n' |
	"$POSTBOTE" -C "$work/sub.conf" --subject 'Bericht für März ✓' \
		--attach "$work/blob.bin" --attach "$work/Tabelle ä.csv" one@example.net 2> "$work/c.err"
rc=$?
if [ $rc -eq 0 ] && wait_for_mail 1 && /usr/bin/python3 - "$(mail_files | head -n1)" "$work/blob.bin" <<'PY'
import email, email.policy, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
assert m['Subject'] == 'Bericht für März ✓', m['Subject']
assert m.get_content_type() == 'multipart/mixed'
parts = list(m.iter_parts())
assert len(parts) == 3, len(parts)
assert parts[0].get_content_type() == 'text/plain'
assert 'Grüße' in parts[0].get_content(), parts[0].get_content()
assert parts[1].get_content_type() == 'application/octet-stream'
assert parts[1].get_filename() == 'blob.bin'
assert parts[1].get_content() == open(sys.argv[2], 'rb').read()
assert parts[2].get_content_type() == 'text/csv', parts[2].get_content_type()
assert parts[2].get_filename() == 'Tabelle ä.csv', parts[2].get_filename()
PY
then
	ok "--subject/--attach build a MIME message that arrives intact"
else
	not_ok "--subject/--attach build a MIME message" "exit $rc: $(cat "$work/c.err")"
fi
assert_exit 65 "a missing attachment is an error before anything is sent" \
	"$POSTBOTE" -C "$work/sub.conf" --subject x --attach /nonexistent/file one@example.net < /dev/null

"$POSTBOTE" --version > "$work/v.out"
if grep -q '^postbote [0-9]' "$work/v.out" && grep -q 'GnuTLS [0-9]' "$work/v.out" &&
	grep -q 'libgsasl [0-9]' "$work/v.out" && grep -q 'libcurl [0-9]' "$work/v.out" &&
	grep -q 'SASL mechanisms: .*PLAIN' "$work/v.out"; then
	ok "--version names the library versions and SASL mechanisms"
else
	not_ok "--version names the library versions and SASL mechanisms" "$(cat "$work/v.out")"
fi

finish
