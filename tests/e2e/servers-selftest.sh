#!/bin/bash
# servers-selftest.sh - prove that the loopback test servers behave as the
# end-to-end tests expect, using only msmtp and python3 as clients.

set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

for tool in msmtp python3; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "# SKIP: $tool is not installed"
		exit 77
	fi
done
[ "$(id -u)" -eq 0 ] || {
	echo "# SKIP: the test servers need root"
	exit 77
}

servers=$top_srcdir/tests/servers/postfix-dovecot.sh

# A second instance starts at the same time as the first: both must come
# up, on different ports, each with its own Maildir.
second_dir=$(mktemp -d "${TMPDIR:-/tmp}/postbote-e2e2.XXXXXX")
second_pid=
second_running=yes
stop_second() {
	[ -n "$second_running" ] || return 0
	second_running=
	if [ -n "$second_pid" ]; then
		wait "$second_pid" 2>/dev/null
	fi
	"$servers" stop "$second_dir"
	[ "${KEEP_TEST_DIR:-0}" = 1 ] || rm -rf "$second_dir"
}
trap_add stop_second
"$servers" start "$second_dir" </dev/null {E2E_TAP_FD}>&- &
second_pid=$!
servers_start
second_status=0
wait "$second_pid" || second_status=$?
second_pid=
assert_eq "second instance started in parallel" 0 "$second_status"

# --- msmtp ------------------------------------------------------------------

rc=$E2E_TMP/msmtprc
write_msmtprc() {
	cat >"$rc" <<EOF
defaults
host localhost
tls on
tls_trust_file $CA_FILE
auth on
user $SMTP_USER
password $SMTP_PASSWORD
from sender@example.com
logfile $E2E_TMP/msmtp.log

account submission
port $SUBMISSION_PORT
tls_starttls on

account smtps
port $SMTPS_PORT
tls_starttls off

account ipv6 : submission
host ::1

account user2 : submission
user $SMTP_USER2
password "$SMTP_PASSWORD2"

account badpass : submission
password not-the-password

account wrongname : submission
port $WRONGNAME_PORT

account untrusted : submission
port $UNTRUSTED_PORT

account untrusted_ok : untrusted
tls_trust_file $UNTRUSTED_CA_FILE

account default : submission
EOF
	chmod 600 "$rc"
}
write_msmtprc

# make_message FILE TAG: a message with every header msmtp would otherwise
# add, a line msmtp must dot-stuff, UTF-8 and a long line.
make_message() {
	{
		printf 'From: Sender <sender@example.com>\n'
		printf 'To: Someone <someone@example.net>\n'
		printf 'Subject: selftest %s\n' "$2"
		printf 'Date: Mon, 02 Jan 2006 15:04:05 +0000\n'
		printf 'Message-ID: <%s.selftest@example.com>\n' "$2"
		printf 'Received: from client-side.example by x; Mon, 02 Jan 2006 15:04:00 +0000\n'
		printf 'MIME-Version: 1.0\n'
		printf 'Content-Type: text/plain; charset=utf-8\n'
		printf 'Content-Transfer-Encoding: 8bit\n'
		printf '\n'
		printf 'Grüße aus dem Selbsttest.\n'
		printf '.a line that starts with a dot\n'
		printf '.\n'
		printf '%0900d\n' 0
		printf 'last line\n'
	} >"$1"
}

# newest_mail: the most recently delivered message.
newest_mail() {
	mail_files | tail -n 1
}

# sent_and_delivered NAME ACCOUNT RECIPIENT [msmtp options...]: send a
# message, wait for it, and compare what arrived with what was sent.
sent_and_delivered() {
	local name=$1 account=$2 rcpt=$3 before file
	shift 3
	make_message "$E2E_TMP/$name.eml" "$name"
	before=$(mail_files | wc -l)
	assert_exit 0 "$name: msmtp sends" msmtp -C "$rc" -a "$account" "$@" "$rcpt" \
		<"$E2E_TMP/$name.eml" || return 1
	if ! wait_for_mail $((before + 1)); then
		not_ok "$name: delivered"
		return 1
	fi
	file=$(newest_mail)
	if strip_trace_headers "$file" | cmp -s - "$E2E_TMP/$name.eml"; then
		ok "$name: delivered byte for byte"
	else
		not_ok "$name: delivered byte for byte" \
			"$(strip_trace_headers "$file" | diff "$E2E_TMP/$name.eml" - | head -n 20)"
	fi
	assert_contains "$name: envelope recipient shown" "$file" "Delivered-To: $rcpt"
	assert_contains "$name: envelope sender shown" "$file" \
		"Return-Path: <sender@example.com>"
}

clear_mail
sent_and_delivered submission submission rcpt1@example.net
assert_contains "submission: authenticated" "$(newest_mail)" \
	"(Authenticated sender: $SMTP_USER)"
assert_contains "submission: X-Original-To" "$(newest_mail)" \
	"X-Original-To: rcpt1@example.net"
sent_and_delivered smtps smtps rcpt2@example.org

for mech in plain login cram-md5 digest-md5 scram-sha-1 scram-sha-256; do
	sent_and_delivered "auth-$mech" submission "$mech@example.com" \
		--auth="$mech"
done
sent_and_delivered user2 user2 rcpt3@example.net --auth=scram-sha-256
assert_contains "user2: authenticated as the second user" "$(newest_mail)" \
	"(Authenticated sender: $SMTP_USER2)"

if [ "$SERVER_IPV6" = yes ]; then
	sent_and_delivered ipv6 ipv6 rcpt6@example.net
	assert_contains "ipv6: received over ::1" "$(newest_mail)" "[IPv6:::1]"
else
	skip "ipv6" "no IPv6 loopback here"
fi

count_before=$(mail_files | wc -l)
make_message "$E2E_TMP/bad.eml" bad
assert_exit 77 "wrong password: refused" \
	msmtp -C "$rc" -a badpass x@example.net <"$E2E_TMP/bad.eml"
assert_contains "wrong password: 535 5.7.8" "$ASSERT_STDERR" "535 5.7.8"
assert_contains "wrong password: Dovecot log" "$DOVECOT_LOG" "Password mismatch"

assert_exit 69 "wrongname: refused" \
	msmtp -C "$rc" -a wrongname x@example.net <"$E2E_TMP/bad.eml"
assert_contains "wrongname: name mismatch" "$ASSERT_STDERR" "does not match"
assert_exit 69 "untrusted: refused" \
	msmtp -C "$rc" -a untrusted x@example.net <"$E2E_TMP/bad.eml"
assert_contains "untrusted: unknown issuer" "$ASSERT_STDERR" "issuer is unknown"
assert_exit 0 "untrusted: accepted with its CA" \
	msmtp -C "$rc" -a untrusted_ok untrusted@example.net \
	<"$E2E_TMP/bad.eml"
wait_for_mail $((count_before + 1)) &&
	assert_eq "only the message to the untrusted port (with its CA) arrived" \
		"$((count_before + 1))" "$(mail_files | wc -l)"

# A success DSN goes to DSN_MAILDIR, not MAILDIR.
clear_mail
make_message "$E2E_TMP/dsn.eml" dsn
assert_exit 0 "DSN: sent with NOTIFY=SUCCESS" \
	msmtp -C "$rc" --dsn-notify=success dsn@example.net \
	<"$E2E_TMP/dsn.eml"
wait_for_mail 1
wait_for_mail 1 20 "$DSN_MAILDIR"
assert_eq "success DSN delivered to DSN_MAILDIR" \
	1 "$(mail_files "$DSN_MAILDIR" | wc -l)"
assert_eq "MAILDIR holds only the message" 1 "$(mail_files | wc -l)"
dsn_file=$(mail_files "$DSN_MAILDIR" | head -n 1)
assert_contains "DSN content" "$dsn_file" "Successful Mail Delivery Report"
clear_mail
assert_eq "clear_mail empties MAILDIR" 0 "$(mail_files | wc -l)"

# --- SMTP dialogue with python3 -------------------------------------------

dialogue() {
	python3 - "$@" <<'EOF'
import smtplib
import ssl
import sys

port, notls_port, cafile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
context = ssl.create_default_context(cafile=cafile)

def say(*words):
    print(*words)

s = smtplib.SMTP("127.0.0.1", port, local_hostname="localhost", timeout=10)
s.ehlo()
say("plain-starttls", s.has_extn("starttls"))
say("plain-auth", s.has_extn("auth"))
say("plain-mail", s.mail("sender@example.com")[0])
s.starttls(context=context)
s.ehlo()
for ext in ("pipelining", "8bitmime", "size", "enhancedstatuscodes", "dsn",
            "smtputf8", "auth"):
    say("tls-" + ext, s.has_extn(ext))
say("mechanisms", " ".join(sorted(s.esmtp_features["auth"].lower().split())))
say("size", s.esmtp_features["size"])
say("mail", s.mail("sender@example.com")[0])
code, text = s.rcpt("victim@example.net")
say("relay", code, text.decode().split()[0])
say("local", s.rcpt("anyone@localhost")[0])
s.quit()

s = smtplib.SMTP("127.0.0.1", notls_port, local_hostname="localhost", timeout=10)
s.ehlo()
say("notls-starttls", s.has_extn("starttls"))
say("notls-auth", s.has_extn("auth"))
refused = s.sendmail("sender@example.com", ["relayed@example.net"],
                     b"Subject: via notls\r\n\r\nrelayed from loopback\r\n")
say("notls-refused", len(refused))
s.quit()
EOF
}

transcript=$E2E_TMP/dialogue.txt
if dialogue "$SUBMISSION_PORT" "$NOTLS_PORT" "$CA_FILE" >"$transcript" 2>&1; then
	ok "python3 dialogue ran"
else
	not_ok "python3 dialogue ran" "$(cat "$transcript")"
fi
expect() {
	assert_contains "dialogue: $1" "$transcript" "$1"
}
expect "plain-starttls True"
expect "plain-auth False"
expect "plain-mail 530"
for ext in pipelining 8bitmime size enhancedstatuscodes dsn smtputf8 auth; do
	expect "tls-$ext True"
done
expect "mechanisms cram-md5 digest-md5 login plain scram-sha-1 scram-sha-256"
expect "size $MESSAGE_SIZE_LIMIT"
expect "mail 250"
expect "relay 554 5.7.1"
expect "local 250"
expect "notls-starttls False"
expect "notls-auth False"
expect "notls-refused 0"
wait_for_mail 1 && assert_contains "notls: relayed message delivered" \
	"$(newest_mail)" "Delivered-To: relayed@example.net"

# --- the second instance ----------------------------------------------------

# shellcheck disable=SC1091 # written at run time
second_submission=$(. "$second_dir/env" && echo "$SUBMISSION_PORT")
second_maildir=$second_dir/Maildir
if [ "$second_submission" != "$SUBMISSION_PORT" ]; then
	ok "second instance has its own ports"
else
	not_ok "second instance has its own ports" "both use $SUBMISSION_PORT"
fi
clear_mail
make_message "$E2E_TMP/second.eml" second
# The second instance has its own CA.
assert_exit 0 "second instance: msmtp sends" \
	msmtp -C "$rc" --port="$second_submission" \
	--tls-trust-file="$second_dir/certs/ca.pem" second@example.net \
	<"$E2E_TMP/second.eml"
wait_for_mail 1 20 "$second_maildir"
assert_eq "second instance delivered to its own Maildir" \
	1 "$(mail_files "$second_maildir" | wc -l)"
assert_eq "first instance's Maildir untouched" 0 "$(mail_files | wc -l)"

# --- stop -------------------------------------------------------------------

# instance_processes DIR: processes working in a directory below DIR.
instance_processes() {
	find /proc/[0-9]*/cwd -maxdepth 0 -lname "$1/*" 2>/dev/null
}
assert_eq "processes found while running" \
	yes "$([ -n "$(instance_processes "$SERVER_DIR")" ] && echo yes)"
start=$(date +%s%N)
servers_stop
stop_ms=$((($(date +%s%N) - start) / 1000000))
echo "# stop took $stop_ms ms"
assert_eq "no processes left after stop" "" "$(instance_processes "$SERVER_DIR")"
if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2)' \
	"$SUBMISSION_PORT" 2>/dev/null; then
	not_ok "submission port closed after stop"
else
	ok "submission port closed after stop"
fi
stop_second
assert_eq "no processes of the second instance left" \
	"" "$(instance_processes "$second_dir")"

finish
