#!/bin/bash
# End-to-end: postbote against a real Postfix + Dovecot on loopback, over
# STARTTLS (submission) and implicit TLS (smtps).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

servers_start || exit $?
POSTBOTE=${POSTBOTE:-$top_builddir/src/postbote}
work=$(mktemp -d "${TMPDIR:-/tmp}/postbote-e2e.XXXXXX")
trap_add "rm -rf '$work'"

# write_config NAME PORT STARTTLS(on|off) [PASSWORD]
write_config() {
	cat > "$work/$1.conf" <<CONF
defaults
tls on
tls_trust_file $CA_FILE
auth on
timeout 30
queue_dir $work/queue
queue off

account $1
host localhost
port $2
tls_starttls $3
user $SMTP_USER
password ${4:-$SMTP_PASSWORD}
from $SMTP_USER

account default : $1
CONF
	chmod 600 "$work/$1.conf"
}
write_config starttls "$SUBMISSION_PORT" on
write_config implicit "$SMTPS_PORT" off
write_config badpass "$SUBMISSION_PORT" on "wrong-password"
write_config wrongname "$WRONGNAME_PORT" on
write_config refused 1 on

make_message() { # FILE SUBJECT [extra body lines on stdin]
	{
		printf 'From: Tester <%s>\n' "$SMTP_USER"
		printf 'To: someone@example.net\n'
		printf 'Subject: %s\n' "$2"
		printf 'Date: Sun, 22 Nov 2026 10:00:00 +0000\n'
		printf 'Message-ID: <%s.%s@postbote.test>\n' "$2" "$$"
		printf '\n'
		cat
	} > "$1"
}

# send_and_compare NAME CONFIG MESSAGE [postbote options...]
send_and_compare() {
	local name=$1 conf=$2 msg=$3
	shift 3
	clear_mail
	if ! "$POSTBOTE" -C "$work/$conf.conf" "$@" someone@example.net \
		< "$msg" 2> "$work/$name.err"; then
		not_ok "$name" "postbote failed: $(cat "$work/$name.err")"
		return
	fi
	if ! wait_for_mail 1; then
		not_ok "$name" "no mail delivered"
		return
	fi
	strip_trace_headers "$(mail_files | head -n1)" > "$work/$name.got"
	if cmp -s "$msg" "$work/$name.got"; then
		ok "$name"
	else
		not_ok "$name" "delivered message differs: $(diff "$msg" "$work/$name.got" | head -n 5)"
	fi
}

printf 'Hello from postbote.\nSecond line.\n' | make_message "$work/plain.eml" plain
send_and_compare "STARTTLS: plain message arrives intact" starttls "$work/plain.eml" -i
send_and_compare "implicit TLS: plain message arrives intact" implicit "$work/plain.eml" -i

printf 'before\n.\n..two dots\n.leading dot\nafter\n' | make_message "$work/dot.eml" dot
send_and_compare "STARTTLS: lone dot line with -i" starttls "$work/dot.eml" -i
send_and_compare "implicit TLS: lone dot line with -oi" implicit "$work/dot.eml" -oi

printf 'Grüße aus Köln – ünïcödé ✓\n日本語のテキスト\n' | make_message "$work/utf8.eml" utf8
send_and_compare "STARTTLS: 8-bit UTF-8 text" starttls "$work/utf8.eml" -i
send_and_compare "implicit TLS: 8-bit UTF-8 text" implicit "$work/utf8.eml" -i

head -c 786432 /dev/urandom | base64 -w 76 | make_message "$work/big.eml" big
send_and_compare "STARTTLS: 1 MB body" starttls "$work/big.eml" -i
send_and_compare "implicit TLS: 1 MB body" implicit "$work/big.eml" -i

# Without -i, a lone dot ends the message (sendmail's rule).
printf 'kept\n.\nnot sent\n' | make_message "$work/legacy.eml" legacy
clear_mail
if "$POSTBOTE" -C "$work/starttls.conf" someone@example.net < "$work/legacy.eml" \
	2> "$work/legacy.err" && wait_for_mail 1; then
	got=$(strip_trace_headers "$(mail_files | head -n1)")
	case $got in
	*kept*"not sent"*) not_ok "without -i a lone dot ends the message" "text after the dot was sent";;
	*kept*) ok "without -i a lone dot ends the message";;
	*) not_ok "without -i a lone dot ends the message" "body missing";;
	esac
else
	not_ok "without -i a lone dot ends the message" "$(cat "$work/legacy.err")"
fi

# -t: recipients from To, Cc and Bcc; Bcc is not transmitted.
clear_mail
cat > "$work/t.eml" <<MSG
From: $SMTP_USER
To: "Person One" <one@example.net>, two@example.net
Cc: undisclosed-recipients:;, three@example.net (third)
Bcc: hidden@example.net
Subject: recipients from headers

body
MSG
if "$POSTBOTE" -C "$work/starttls.conf" -t -i < "$work/t.eml" 2> "$work/t.err" &&
	wait_for_mail 4; then
	delivered=$(cat $(mail_files) | grep -c '^Delivered-To: ')
	if grep -qi '^Bcc:' $(mail_files) || grep -q 'hidden@' $(mail_files | xargs grep -L 'Delivered-To: hidden') 2>/dev/null; then
		not_ok "-t delivers to To/Cc/Bcc and removes Bcc" "Bcc header was transmitted"
	elif [ "$delivered" -eq 4 ] && grep -q '^Delivered-To: hidden@example.net' $(mail_files); then
		ok "-t delivers to To/Cc/Bcc and removes Bcc"
	else
		not_ok "-t delivers to To/Cc/Bcc and removes Bcc" "$delivered deliveries"
	fi
else
	not_ok "-t delivers to To/Cc/Bcc and removes Bcc" "$(cat "$work/t.err")"
fi

# Missing Date, Message-ID and From are added.
clear_mail
printf 'Subject: bare\n\nno headers\n' > "$work/bare.eml"
if "$POSTBOTE" -C "$work/starttls.conf" -i someone@example.net < "$work/bare.eml" \
	2> "$work/bare.err" && wait_for_mail 1; then
	f=$(mail_files | head -n1)
	if grep -q '^Date: ' "$f" && grep -q '^Message-ID: <' "$f" &&
		grep -q "^From: $SMTP_USER" "$f"; then
		ok "missing From, Date and Message-ID are added"
	else
		not_ok "missing From, Date and Message-ID are added" "$(head -n 12 "$f")"
	fi
else
	not_ok "missing From, Date and Message-ID are added" "$(cat "$work/bare.err")"
fi

# -v shows the dialogue, never the credentials.
clear_mail
"$POSTBOTE" -C "$work/starttls.conf" -v -i someone@example.net < "$work/plain.eml" \
	> /dev/null 2> "$work/v.err"
b64=$(printf '\0%s\0%s' "$SMTP_USER" "$SMTP_PASSWORD" | base64 -w0)
if grep -q -- '--> AUTH SCRAM-SHA-256 <credentials redacted>' "$work/v.err" &&
	grep -q -- '<-- 235' "$work/v.err" && grep -q -- '--> MAIL FROM:' "$work/v.err" &&
	grep -q 'TLS established' "$work/v.err" &&
	grep -qE '^\[ *[0-9]+\.[0-9]{3}\] <-- 235 .*\([0-9]+ ms\)$' "$work/v.err" &&
	! grep -q "$(printf '\033')" "$work/v.err" &&
	! grep -qF -- "$SMTP_PASSWORD" "$work/v.err" && ! grep -qF -- "$b64" "$work/v.err"; then
	ok "-v transcript with times, round trips, AUTH redacted, no colour off a terminal"
else
	not_ok "-v transcript with times, round trips, AUTH redacted, no colour off a terminal" "$(cat "$work/v.err")"
fi

# Every mechanism Dovecot offers, forced with "auth MECH".
for mech in PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256; do
	sed "s/^auth on/auth $mech/" "$work/starttls.conf" > "$work/mech.conf"
	chmod 600 "$work/mech.conf"
	clear_mail
	if "$POSTBOTE" -C "$work/mech.conf" -v -i someone@example.net < "$work/plain.eml" \
		> /dev/null 2> "$work/mech.err" && wait_for_mail 1 &&
		grep -q -- "--> AUTH $mech" "$work/mech.err"; then
		ok "AUTH $mech through Dovecot"
	else
		not_ok "AUTH $mech through Dovecot" "$(tail -n 5 "$work/mech.err")"
	fi
done

# -bs: an SMTP conversation on stdin/stdout, as PHP mailer libraries use.
clear_mail
printf 'EHLO php.example\r\nMAIL FROM:<%s>\r\nRCPT TO:<bs1@example.net>\r\nRCPT TO:<bs2@example.net>\r\nDATA\r\nSubject: via -bs\r\n\r\n..dot-stuffed line\r\n.\r\nQUIT\r\n' \
	"$SMTP_USER" | "$POSTBOTE" -C "$work/starttls.conf" -bs > "$work/bs.out" 2> "$work/bs.err"
rc=$?
if [ $rc -eq 0 ] && grep -q '^220 .*ESMTP postbote' "$work/bs.out" &&
	grep -q '^250 2.0.0 sent for 2 of 2 recipients' "$work/bs.out" &&
	grep -q '^221 ' "$work/bs.out" && wait_for_mail 2 &&
	grep -q '^\.dot-stuffed line$' "$(mail_files | head -n1)"; then
	ok "-bs relays an SMTP conversation on stdin/stdout"
else
	not_ok "-bs relays an SMTP conversation on stdin/stdout" "exit $rc: $(cat "$work/bs.out" "$work/bs.err")"
fi
printf 'HELO php.example\r\nMAIL FROM:<%s>\r\nRCPT TO:<bs1@example.net>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\nQUIT\r\n' \
	"$SMTP_USER" | "$POSTBOTE" -C "$work/badpass.conf" -bs > "$work/bs2.out" 2> "$work/bs2.err"
rc=$?
if [ $rc -eq 77 ] && grep -q '^535 5.7.8 authentication' "$work/bs2.out"; then
	ok "-bs passes the onward server's refusal back to the caller"
else
	not_ok "-bs passes the onward server's refusal back to the caller" "exit $rc: $(cat "$work/bs2.out")"
fi

# A wrong password: the server's 535 text, exit 77, nothing delivered.
clear_mail
assert_exit 77 "wrong password exits 77" \
	"$POSTBOTE" -C "$work/badpass.conf" -i someone@example.net < "$work/plain.eml" 2> "$work/bad.err"
assert_contains "wrong password shows the server's 535" "$work/bad.err" "535 5.7.8"

# A certificate for another host name: refused before anything is sent.
clear_mail
assert_exit 69 "certificate for another name is refused" \
	"$POSTBOTE" -C "$work/wrongname.conf" -i someone@example.net < "$work/plain.eml" 2> "$work/wn.err"
assert_contains "certificate error names the problem" "$work/wn.err" "certificate"
sleep 1
if [ -z "$(mail_files)" ]; then ok "nothing delivered after a certificate failure"
else not_ok "nothing delivered after a certificate failure" "mail arrived"; fi

# A certificate from a CA we do not trust.
write_config untrusted "$UNTRUSTED_PORT" on
assert_exit 69 "certificate from an untrusted CA is refused" \
	"$POSTBOTE" -C "$work/untrusted.conf" -i someone@example.net < "$work/plain.eml" 2> "$work/ut.err"
assert_contains "untrusted CA error names the problem" "$work/ut.err" "issuer is unknown"
# ... unless it is pinned by its SHA-256 fingerprint.
fp=$(certtool --certificate-info --infile "$CERT_DIR/untrusted.pem" 2>/dev/null |
	sed -n '/Fingerprint:/,/Public Key ID/{s/^[[:space:]]*sha256://p}' | head -n1 |
	sed 's/../&:/g; s/:$//' | tr a-f A-F)
sed -i "s|^tls_trust_file .*|tls_fingerprint $fp|" "$work/untrusted.conf"
clear_mail
if "$POSTBOTE" -C "$work/untrusted.conf" -i someone@example.net < "$work/plain.eml" 2> "$work/fp.err" &&
	wait_for_mail 1; then
	ok "tls_fingerprint pins a certificate instead of the CA check"
else
	not_ok "tls_fingerprint pins a certificate" "fingerprint $fp: $(cat "$work/fp.err")"
fi

# Connection refused and an unknown host.
assert_exit 75 "connection refused is temporary (75)" \
	"$POSTBOTE" -C "$work/refused.conf" -i someone@example.net < "$work/plain.eml" 2> "$work/ref.err"
assert_contains "refused connection is explained" "$work/ref.err" "nothing is listening"
sed 's/^host localhost/host no-such-host.invalid/' "$work/starttls.conf" > "$work/nohost.conf"
chmod 600 "$work/nohost.conf"
"$POSTBOTE" -C "$work/nohost.conf" -i someone@example.net < "$work/plain.eml" 2> "$work/nh.err"
rc=$?
if { [ $rc -eq 68 ] || [ $rc -eq 75 ]; } && grep -q 'cannot resolve no-such-host.invalid' "$work/nh.err"; then
	ok "a host that does not resolve is reported ($rc)"
else
	not_ok "a host that does not resolve is reported" "exit $rc: $(cat "$work/nh.err")"
fi

# Relaying without authentication is refused by the server, and reported.
cat > "$work/noauth.conf" <<CONF
account noauth
host localhost
port $SUBMISSION_PORT
tls_trust_file $CA_FILE
auth off
from $SMTP_USER
queue off
CONF
"$POSTBOTE" -C "$work/noauth.conf" -i someone@example.net < "$work/plain.eml" 2> "$work/na.err"
rc=$?
if [ $rc -ne 0 ] && grep -q 'RCPT TO:<someone@example.net>: server replied 5' "$work/na.err"; then
	ok "unauthenticated relaying is refused and reported (exit $rc)"
else
	not_ok "unauthenticated relaying is refused and reported" "exit $rc: $(cat "$work/na.err")"
fi

finish
