#!/bin/bash
# End-to-end: postbote against the scriptable fault server. Each case plays
# a fault at one stage and checks the exit status, the message printed and
# what the server actually received (delivered intact, or nothing).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

POSTBOTE=${POSTBOTE:-$top_builddir/src/postbote}
FAULT=$top_srcdir/tests/servers/faultserver.py
work=$(mktemp -d "${TMPDIR:-/tmp}/postbote-faults.XXXXXX")
trap_add "rm -rf '$work'"
sh "$top_srcdir/tests/servers/certs.sh" "$work/certs" >/dev/null || exit 1

printf 'From: a@example.org\nTo: b@example.org\nSubject: fault test\nDate: Sun, 22 Nov 2026 10:00:00 +0000\nMessage-ID: <f@example.org>\n\nline one\n.dot line\n' > "$work/msg.eml"

server_pid=
start_fault() { # SCRIPT_JSON [extra faultserver args...]
	local script=$1
	local auth=(--user tester --password secret)
	[ -n "${NOAUTH:-}" ] && auth=()
	shift
	printf '%s\n' "$script" > "$work/script.json"
	rm -f "$work/port" "$work/record.jsonl"
	python3 "$FAULT" --port-file "$work/port" --script "$work/script.json" \
		--record "$work/record.jsonl" "${auth[@]}" \
		--cert "$work/certs/server.pem" --key "$work/certs/server-key.pem" "$@" &
	server_pid=$!
	for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
	[ -s "$work/port" ] || { echo "fault server did not start"; return 1; }
	port=$(cat "$work/port")
	cat > "$work/conf" <<CONF
account fault
host localhost
port $port
tls_trust_file $work/certs/ca.pem
user tester
password secret
from a@example.org
timeout 3
queue_dir $work/queue
queue off
CONF
	chmod 600 "$work/conf"
}
stop_fault() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	server_pid=
}
trap_add 'stop_fault'

summary() { python3 "$FAULT" --summary "$work/record.jsonl"; }
delivered_count() { summary | grep -c ' message accepted' || true; }

# case NAME SCRIPT EXPECTED_EXIT EXPECTED_TEXT [DELIVERED_COUNT [recipients...]]
case_run() {
	local name=$1 script=$2 want=$3 text=$4 want_delivered=${5:-0}
	shift 5 2>/dev/null || shift $#
	local rcpts=("$@")
	[ ${#rcpts[@]} -gt 0 ] || rcpts=(b@example.org)
	start_fault "$script" || { not_ok "$name" "fault server"; return; }
	local t0=$SECONDS
	"$POSTBOTE" -C "$work/conf" -i "${rcpts[@]}" < "$work/msg.eml" 2> "$work/err"
	local rc=$?
	stop_fault
	local got_delivered
	got_delivered=$(delivered_count)
	if [ "$rc" -ne "$want" ]; then
		not_ok "$name" "exit $rc, want $want: $(cat "$work/err")"
	elif [ -n "$text" ] && ! grep -qF -- "$text" "$work/err"; then
		not_ok "$name" "message lacks \"$text\": $(cat "$work/err")"
	elif [ "$got_delivered" -ne "$want_delivered" ]; then
		not_ok "$name" "server accepted $got_delivered messages, want $want_delivered"
	elif [ $((SECONDS - t0)) -gt 20 ]; then
		not_ok "$name" "took $((SECONDS - t0)) s"
	else
		ok "$name"
	fi
}

case_run "greeting 554 is permanent" '{"greeting": {"reply": "554 5.3.2 no service"}}' \
	69 "(greeting): server replied 554 5.3.2 no service"
case_run "greeting 421 is temporary" '{"greeting": {"reply": "421 4.3.2 busy, try later"}}' \
	75 "server replied 421 4.3.2 busy, try later"
case_run "EHLO refused when TLS is needed" '{"ehlo": {"reply": "550 5.5.1 no EHLO for you"}}' \
	69 "EHLO"
case_run "STARTTLS not offered: nothing sent" \
	'{"capabilities": ["PIPELINING", "AUTH PLAIN LOGIN"]}' 69 "does not offer STARTTLS"
if summary | grep -q 'command MAIL\|command AUTH'; then
	not_ok "no AUTH or MAIL without STARTTLS" "$(summary)"
else
	ok "no AUTH or MAIL without STARTTLS"
fi
case_run "STARTTLS 454 is temporary" '{"starttls": {"reply": "454 4.7.0 TLS not available"}}' \
	75 "STARTTLS: server replied 454 4.7.0 TLS not available"
case_run "data injected after STARTTLS 220 is refused" \
	'{"starttls": {"raw": "220 go ahead\r\n250 injected\r\n"}}' 76 "after its 220 reply to STARTTLS"
case_run "AUTH 535 shows the server's text" \
	'{"auth": {"reply": "535 5.7.8 Authentication credentials invalid"}}' \
	77 "server replied 535 5.7.8 Authentication credentials invalid"
case_run "AUTH 454 is temporary" '{"auth": {"reply": "454 4.7.0 Temporary authentication failure"}}' \
	75 "454 4.7.0"
case_run "MAIL 451 is temporary" '{"mail": {"reply": "451 4.3.0 greylisted"}}' \
	75 "MAIL FROM:<a@example.org>"
case_run "MAIL 553 is permanent" '{"mail": {"reply": "553 5.7.1 sender not owned by user"}}' \
	77 "553 5.7.1 sender not owned by user"
case_run "one of three recipients refused: the others get it" \
	'{"rcpt": [{"reply": "250 2.1.5 ok"}, {"reply": "550 5.1.1 <r2@example.org>: no such user"}, {"reply": "250 2.1.5 ok"}]}' \
	67 "recipient r2@example.org refused" 1 r1@example.org r2@example.org r3@example.org
if summary | grep -q 'message accepted from=<a@example.org> to=<r1@example.org>,<r3@example.org>'; then
	ok "the two accepted recipients got the message"
else
	not_ok "the two accepted recipients got the message" "$(summary | grep message)"
fi
case_run "all recipients refused: nothing sent" \
	'{"rcpt": {"reply": "550 5.1.1 no such user"}}' 67 "mailbox does not exist" 0 \
	r1@example.org r2@example.org
case_run "DATA 554 is permanent" '{"data": {"reply": "554 5.5.1 no thanks"}}' \
	69 "DATA: server replied 554 5.5.1 no thanks"
case_run "final dot 451 is temporary" '{"dot": {"reply": "451 4.3.0 queue full"}}' \
	75 ".: server replied 451 4.3.0 queue full"
case_run "final dot 552 is a size problem" '{"dot": {"reply": "552 5.3.4 message too big"}}' \
	65 "too large"
case_run "final dot 554 is permanent" '{"dot": {"reply": "554 5.7.1 spam"}}' 77 "554 5.7.1 spam"
case_run "multi-line reply is shown whole" \
	'{"mail": {"reply": ["550-5.7.1 first line", "550-5.7.1 second line", "550 5.7.1 third line"]}}' \
	77 "first line"
grep -q "third line" "$work/err" && ok "multi-line reply: last line shown" ||
	not_ok "multi-line reply: last line shown" "$(cat "$work/err")"
case_run "connection dropped during the body" \
	'{"body": {"action": "drop", "after_bytes": 10}}' 75 "connection"
case_run "connection dropped after the final dot" '{"dot": {"action": "drop"}}' \
	75 "connection was lost"
case_run "silent server after greeting times out" '{"ehlo": {"action": "hang"}}' \
	75 "did not answer in time"
case_run "silent server after the dot times out" '{"dot": {"action": "hang"}}' \
	75 "did not answer in time"
case_run "a TLS handshake that never comes times out" \
	'{"starttls": {"reply": "220 2.0.0 Ready", "then": "hang"}}' 75 "TLS: TLS handshake: timed out"
case_run "silent server under TLS (after AUTH) times out" '{"mail": {"action": "hang"}}' \
	75 "did not answer in time"
case_run "control characters in replies are made visible" \
	'{"mail": {"raw": "550 5.7.1 evil\u001b[31m text\r\n"}}' 77 'evil\x1b[31m text'
case_run "bare-LF replies are understood" \
	'{"greeting": {"raw": "220 fault.test ESMTP\n"}, "mail": {"raw": "451 4.3.0 later\n"}}' \
	75 "451 4.3.0 later"
case_run "an over-long reply line is a protocol error" \
	"{\"mail\": {\"raw\": \"250 $(head -c 6000 /dev/zero | tr '\0' x)\r\n\"}}" 76 "too long"
case_run "452 too many recipients: the rest in a further transaction" \
	'{"rcpt": [{"reply": "250 2.1.5 ok"}, {"reply": "452 4.5.3 too many recipients"}, {"reply": "452 4.5.3 too many recipients"}, {"action": "default"}]}' \
	0 "" 2 r1@example.org r2@example.org r3@example.org
if summary | grep -q 'message accepted from=<a@example.org> to=<r1@example.org> ' &&
	summary | grep -q 'message accepted from=<a@example.org> to=<r2@example.org>,<r3@example.org> '; then
	ok "452: each recipient got the message exactly once"
else
	not_ok "452: each recipient got the message exactly once" "$(summary | grep message)"
fi
case_run "a temporary refusal after partial delivery does not ask for a retry" \
	'{"rcpt": [{"reply": "250 2.1.5 ok"}, {"reply": "450 4.2.1 mailbox busy"}]}' \
	69 "recipient r2@example.org refused" 1 r1@example.org r2@example.org

# -bv: MAIL/RCPT/RSET, no DATA; each recipient's answer printed.
start_fault '{"rcpt": [{"reply": "250 2.1.5 ok"}, {"reply": "550 5.1.1 no such user"}]}'
"$POSTBOTE" -C "$work/conf" -bv good@example.org bad@example.org > "$work/bv.out" 2> "$work/bv.err" < /dev/null
rc=$?
stop_fault
if [ $rc -eq 67 ] && grep -q '^good@example.org: deliverable' "$work/bv.out" &&
	grep -q '^bad@example.org: refused: .*550 5.1.1 no such user' "$work/bv.out" &&
	! summary | grep -q 'command DATA' && summary | grep -q 'command RSET'; then
	ok "-bv verifies recipients without sending"
else
	not_ok "-bv verifies recipients without sending" "exit $rc: $(cat "$work/bv.out" "$work/bv.err")"
fi

# DSN options are dropped with a note when the server lacks DSN; -X logs.
start_fault '{"capabilities": ["PIPELINING", "STARTTLS", "AUTH PLAIN"]}'
"$POSTBOTE" -C "$work/conf" -v -X "$work/traffic.log" -N success -R hdrs -i b@example.org \
	< "$work/msg.eml" 2> "$work/dsn.err"
rc=$?
stop_fault
if [ $rc -eq 0 ] && grep -q 'does not offer DSN' "$work/dsn.err" &&
	summary | grep -q 'command RCPT TO:<b@example.org>$' && [ "$(delivered_count)" -eq 1 ]; then
	ok "DSN dropped when not offered, message still sent"
else
	not_ok "DSN dropped when not offered, message still sent" "exit $rc: $(cat "$work/dsn.err")"
fi
if grep -q -- '--> MAIL FROM:<a@example.org>' "$work/traffic.log" &&
	grep -q -- '--> AUTH PLAIN <credentials redacted>' "$work/traffic.log" &&
	! grep -q secret "$work/traffic.log"; then
	ok "-X writes the dialogue to a file, credentials redacted"
else
	not_ok "-X writes the dialogue to a file, credentials redacted" "$(cat "$work/traffic.log")"
fi
start_fault '{}'
"$POSTBOTE" -C "$work/conf" -N success,delay -R full -V env.1 -i b@example.org < "$work/msg.eml" 2> "$work/dsn2.err"
rc=$?
stop_fault
if [ $rc -eq 0 ] && summary | grep -q 'command MAIL FROM:<a@example.org> .*RET=FULL ENVID=env.1' &&
	summary | grep -q 'command RCPT TO:<b@example.org> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b@example.org'; then
	ok "-N -R -V become NOTIFY/RET/ENVID when DSN is offered"
else
	not_ok "-N -R -V become NOTIFY/RET/ENVID when DSN is offered" "exit $rc: $(summary | grep command)"
fi

case_run "a non-ASCII address without SMTPUTF8 is refused before sending" \
	'{"capabilities": ["PIPELINING", "8BITMIME", "STARTTLS", "AUTH PLAIN"]}' \
	65 "does not offer SMTPUTF8" 0 "jörg@example.org"
if summary | grep -q 'command MAIL'; then
	not_ok "no MAIL for an address the server cannot take" "$(summary | grep MAIL)"
else
	ok "no MAIL for an address the server cannot take"
fi

# EHLO refused by an old server: HELO when neither TLS nor AUTH is needed.
NOAUTH=1 start_fault '{"ehlo": {"reply": "502 5.5.1 EHLO not implemented"}}' --tls none
cat > "$work/plain.conf" <<CONF
account plain
host localhost
port $port
tls off
auth off
from a@example.org
timeout 3
queue off
CONF
"$POSTBOTE" -C "$work/plain.conf" -i b@example.org < "$work/msg.eml" 2> "$work/helo.err"
rc=$?
stop_fault
if [ $rc -eq 0 ] && summary | grep -q 'command HELO ' && [ "$(delivered_count)" -eq 1 ]; then
	ok "EHLO refused: HELO fallback when no TLS or AUTH is needed"
else
	not_ok "EHLO refused: HELO fallback" "exit $rc: $(cat "$work/helo.err")"
fi

# CR/LF in config values never reach the wire.
start_fault '{}'
printf 'from a@example.org\rRCPT TO:<evil@example.org>\n' >> "$work/conf"
"$POSTBOTE" -C "$work/conf" -i b@example.org < "$work/msg.eml" 2> "$work/inj.err"
rc=$?
stop_fault
if [ $rc -eq 78 ] && ! summary | grep -q 'evil@'; then
	ok "a CR in the config's from cannot inject a command (exit 78)"
else
	not_ok "a CR in the config's from cannot inject a command" "exit $rc: $(cat "$work/inj.err")"
fi

case_run "a clean submission succeeds" '{}' 0 "" 1
python3 "$FAULT" --dump "$work/record.jsonl" --message 0 --out "$work/got.eml" >/dev/null 2>&1
if [ -f "$work/got.eml" ] && [ "$(tr -d '\r' < "$work/got.eml")" = "$(cat "$work/msg.eml")" ]; then
	ok "the fault server received the message intact"
else
	not_ok "the fault server received the message intact" "differs"
fi

finish
