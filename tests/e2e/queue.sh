#!/bin/bash
# End-to-end: the queue without a daemon, against the fault server. A
# temporary failure keeps the message (exit 0 and a notice), -bp lists it,
# -q delivers it intact exactly once, --no-queue / "queue off" exit 75 and
# keep nothing, partial refusals keep only the refused recipients, the next
# send takes due entries along, permanent failures are not retried, old
# entries expire, concurrent flushes never deliver an entry twice, and
# kill -9 in the middle of a flush loses nothing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

POSTBOTE=${POSTBOTE:-$top_builddir/src/postbote}
FAULT=$top_srcdir/tests/servers/faultserver.py
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
work=$(mktemp -d "${TMPDIR:-/tmp}/postbote-queue.XXXXXX")
trap_add "rm -rf '$work'"
sh "$top_srcdir/tests/servers/certs.sh" "$work/certs" >/dev/null || exit 1
Q=$work/queue

server_pid=
start_fault() { # SCRIPT_JSON
	printf '%s\n' "$1" > "$work/script.json"
	rm -f "$work/port" "$work/record.jsonl"
	"$PY" "$FAULT" --port-file "$work/port" --script "$work/script.json" \
		--record "$work/record.jsonl" --user tester --password secret \
		--cert "$work/certs/server.pem" --key "$work/certs/server-key.pem" &
	server_pid=$!
	for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
	[ -s "$work/port" ] || return 1
	cat > "$work/conf" <<CONF
account fault
host localhost
port $(cat "$work/port")
tls_trust_file $work/certs/ca.pem
user tester
password secret
from a@example.org
timeout 3
queue_dir $Q
CONF
	chmod 600 "$work/conf"
}
stop_fault() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	server_pid=
}
trap_add 'stop_fault'
summary() { "$PY" "$FAULT" --summary "$work/record.jsonl"; }
accepted() { summary | grep -c ' message accepted' || true; }
entries() { find "$Q" -maxdepth 1 -name '*.env' 2>/dev/null | wc -l; }
# Pretend time passed: make every entry due now.
make_due() { for f in "$Q"/*.env; do [ -f "$f" ] && sed -i 's/^next-attempt .*/next-attempt 0/' "$f"; done; }

msg() { # N: a message with its own Message-ID
	printf 'From: a@example.org\nTo: b@example.org\nSubject: queued %s\nMessage-ID: <q%s@example.org>\n\nbody %s\n.dot line\n' "$1" "$1" "$1"
}

# 1. temporary failure: kept, exit 0, one-line notice
start_fault '{"mail": {"reply": "451 4.3.0 greylisted, try later"}}'
msg 1 | "$POSTBOTE" -C "$work/conf" -i b@example.org 2> "$work/1.err"
rc=$?
stop_fault
if [ $rc -eq 0 ] && [ "$(wc -l < "$work/1.err")" -eq 1 ] &&
	grep -q 'temporary failure; queued as ' "$work/1.err" && [ "$(entries)" -eq 1 ] &&
	[ "$(accepted)" -eq 0 ]; then
	ok "a temporary failure queues the message and exits 0 with a notice"
else
	not_ok "a temporary failure queues the message and exits 0 with a notice" "exit $rc: $(cat "$work/1.err")"
fi

# 2. -bp / mailq lists it
"$POSTBOTE" -C "$work/conf" -bp > "$work/bp.out" 2>&1
ln -sf "$POSTBOTE" "$work/mailq"
"$work/mailq" -C "$work/conf" > "$work/mailq.out" 2>&1
if grep -q '<a@example.org>' "$work/bp.out" && grep -q 'to: b@example.org' "$work/bp.out" &&
	grep -q 'last error: .*451 4.3.0 greylisted' "$work/bp.out" && cmp -s "$work/bp.out" "$work/mailq.out"; then
	ok "-bp and mailq list id, age, size, sender, recipients, last error"
else
	not_ok "-bp and mailq list the entry" "$(cat "$work/bp.out" "$work/mailq.out")"
fi

# 3. --no-queue and "queue off": 75, nothing kept
start_fault '{"mail": {"reply": "451 4.3.0 later"}}'
msg 2 | "$POSTBOTE" -C "$work/conf" --no-queue -i b@example.org 2> "$work/3.err"
rc1=$?
cp "$work/conf" "$work/conf-off"; echo "queue off" >> "$work/conf-off"
msg 3 | "$POSTBOTE" -C "$work/conf-off" -i b@example.org 2> "$work/3b.err"
rc2=$?
stop_fault
if [ $rc1 -eq 75 ] && [ $rc2 -eq 75 ] && [ "$(entries)" -eq 1 ]; then
	ok "--no-queue and queue off exit 75 and keep nothing"
else
	not_ok "--no-queue and queue off exit 75 and keep nothing" "exits $rc1 $rc2, entries $(entries)"
fi

# 4. -q delivers it intact, exactly once; the queue is then empty
start_fault '{}'
"$POSTBOTE" -C "$work/conf" -q 2> "$work/4.err"
rc=$?
stop_fault
"$PY" "$FAULT" --dump "$work/record.jsonl" --message 0 --out "$work/4.got" >/dev/null 2>&1
if [ $rc -eq 0 ] && [ "$(accepted)" -eq 1 ] && [ "$(entries)" -eq 0 ] &&
	[ "$(tr -d '\r' < "$work/4.got" | grep -v '^Date: ')" = "$(msg 1)" ] &&
	[ "$(grep -c '^Date: ' "$work/4.got")" -eq 1 ]; then
	ok "-q delivers the queued message intact, once, and empties the queue"
else
	not_ok "-q delivers the queued message intact" "exit $rc, accepted $(accepted), entries $(entries): $(cat "$work/4.err")"
fi
"$POSTBOTE" -C "$work/conf" -bp > "$work/bp2.out"
assert_contains "-bp says the queue is empty" "$work/bp2.out" "Mail queue is empty"

# 5. partial: only the temporarily refused recipient is kept
start_fault '{"rcpt": [{"reply": "250 2.1.5 ok"}, {"reply": "450 4.2.1 mailbox busy"}]}'
msg 5 | "$POSTBOTE" -C "$work/conf" -i r1@example.org r2@example.org 2> "$work/5.err"
rc=$?
stop_fault
if [ $rc -eq 0 ] && [ "$(entries)" -eq 1 ] && grep -q '^rcpt r2@example.org$' "$Q"/*.env &&
	! grep -q '^rcpt r1@example.org$' "$Q"/*.env && summary | grep -q 'to=<r1@example.org> '; then
	ok "partial refusal: delivered to r1, only r2 queued"
else
	not_ok "partial refusal: delivered to r1, only r2 queued" "exit $rc: $(cat "$work/5.err")"
fi
start_fault '{}'
"$POSTBOTE" -C "$work/conf" -q 2> "$work/5b.err"
stop_fault
if summary | grep -q 'message accepted from=<a@example.org> to=<r2@example.org> ' &&
	[ "$(accepted)" -eq 1 ] && [ "$(entries)" -eq 0 ]; then
	ok "the retry goes to r2 only: nobody gets it twice"
else
	not_ok "the retry goes to r2 only" "$(summary | grep message)"
fi

# 6. the next send takes due entries along on the same connection
start_fault '{"mail": {"reply": "421 4.3.2 shutting down"}}'
msg 6 | "$POSTBOTE" -C "$work/conf" -i b@example.org 2> /dev/null
stop_fault
make_due
start_fault '{}'
msg 7 | "$POSTBOTE" -C "$work/conf" -i b@example.org 2> "$work/6.err"
rc=$?
stop_fault
if [ $rc -eq 0 ] && [ "$(accepted)" -eq 2 ] && [ "$(entries)" -eq 0 ] &&
	[ "$(summary | grep -c ' connect')" -eq 1 ] && summary | grep -q 'command RSET\|message accepted'; then
	ok "a later send delivers due queued mail on the same connection"
else
	not_ok "a later send delivers due queued mail on the same connection" "exit $rc: $(summary | grep -v command)"
fi

# 7. a permanent failure during -q is reported and not retried
start_fault '{"mail": {"reply": "451 4.3.0 later"}}'
msg 8 | "$POSTBOTE" -C "$work/conf" -i b@example.org 2> /dev/null
stop_fault
start_fault '{"dot": {"reply": "554 5.7.1 rejected as spam"}}'
"$POSTBOTE" -C "$work/conf" -q 2> "$work/7.err"
rc=$?
stop_fault
if [ $rc -eq 0 ] && [ "$(entries)" -eq 0 ] && grep -q 'refused permanently.*554 5.7.1 rejected as spam' "$work/7.err"; then
	ok "a permanent failure in -q is reported and dropped, not retried"
else
	not_ok "a permanent failure in -q is reported and dropped" "exit $rc, entries $(entries): $(cat "$work/7.err")"
fi

# 8. entries older than queue_lifetime are moved aside and reported
start_fault '{"mail": {"reply": "451 4.3.0 later"}}'
msg 9 | "$POSTBOTE" -C "$work/conf" -i b@example.org 2> /dev/null
stop_fault
sed -i 's/^created .*/created 1000/' "$Q"/*.env
start_fault '{}'
echo "queue_lifetime 2d" >> "$work/conf"
"$POSTBOTE" -C "$work/conf" -q 2> "$work/8.err"
stop_fault
"$PY" "$FAULT" --dump "$work/record.jsonl" --message 0 --out "$work/8.notice" >/dev/null 2>&1
if [ "$(entries)" -eq 0 ] && [ "$(accepted)" -eq 1 ] && ls "$Q"/failed/*.env > /dev/null 2>&1 &&
	grep -q 'expired after 2 days' "$work/8.err" &&
	summary | grep -q 'message accepted from=<> to=<a@example.org>' &&
	grep -q '^Subject: Undelivered mail: b@example.org' "$work/8.notice" &&
	grep -q '^Auto-Submitted: auto-replied' "$work/8.notice" &&
	grep -q 'Last error: .*451 4.3.0 later' "$work/8.notice"; then
	ok "expired entries go to failed/, are reported, and the sender gets a notice"
else
	not_ok "expired entries are moved to failed/ and reported" "$(cat "$work/8.err")"
fi

# 9. two concurrent flushes never deliver an entry twice
start_fault '{"mail": {"reply": "451 4.3.0 later"}}'
for i in $(seq 10 29); do msg "$i" | "$POSTBOTE" -C "$work/conf" -i b@example.org 2> /dev/null; done
stop_fault
start_fault '{"dot": {"delay": 0.05, "action": "default"}}'
"$POSTBOTE" -C "$work/conf" -q 2> /dev/null & p1=$!
"$POSTBOTE" -C "$work/conf" -q 2> /dev/null & p2=$!
wait $p1 $p2
stop_fault
ids=$(for k in $(seq 0 40); do "$PY" "$FAULT" --dump "$work/record.jsonl" --message "$k" --out - 2>/dev/null | grep '^Message-ID' ; done | sort)
if [ "$(printf '%s\n' "$ids" | grep -c .)" -eq 20 ] && [ -z "$(printf '%s\n' "$ids" | uniq -d)" ] &&
	[ "$(entries)" -eq 0 ]; then
	ok "two concurrent flushes deliver each of 20 entries exactly once"
else
	not_ok "two concurrent flushes deliver each entry exactly once" "$(printf '%s\n' "$ids" | uniq -c | sort -rn | head -n 3), entries $(entries)"
fi

# 10. kill -9 in the middle of a flush: nothing is lost; at most the
# message in flight is sent again
start_fault '{"mail": {"reply": "451 4.3.0 later"}}'
for i in $(seq 40 49); do msg "$i" | "$POSTBOTE" -C "$work/conf" -i b@example.org 2> /dev/null; done
stop_fault
start_fault '{"dot": {"delay": 0.3, "action": "default"}}'
"$POSTBOTE" -C "$work/conf" -q 2> /dev/null & pq=$!
sleep 1.2
kill -9 $pq 2>/dev/null
wait $pq 2>/dev/null
stop_fault
cp "$work/record.jsonl" "$work/record-1.jsonl"
first=$(for k in $(seq 0 20); do "$PY" "$FAULT" --dump "$work/record-1.jsonl" --message "$k" --out - 2>/dev/null | grep '^Message-ID'; done)
make_due
start_fault '{}'
"$POSTBOTE" -C "$work/conf" -q 2> /dev/null
stop_fault
second=$(for k in $(seq 0 20); do "$PY" "$FAULT" --dump "$work/record.jsonl" --message "$k" --out - 2>/dev/null | grep '^Message-ID'; done)
all=$(printf '%s\n%s\n' "$first" "$second" | grep . | sort)
dups=$(printf '%s\n' "$all" | uniq -d | grep -c . || true)
if [ -n "$first" ] && [ "$(printf '%s\n' "$all" | sort -u | grep -c .)" -eq 10 ] && [ "$dups" -le 1 ] &&
	[ "$(entries)" -eq 0 ]; then
	ok "kill -9 during a flush: all 10 delivered, at most the one in flight twice ($dups)"
else
	not_ok "kill -9 during a flush loses nothing" "first: $(printf '%s' "$first" | grep -c .), all: $(printf '%s\n' "$all" | sort -u | grep -c .), dups $dups, entries $(entries)"
fi

finish
