#!/bin/bash
# End-to-end: the documented message rules (postbote(8), THE MESSAGE)
# through a real Postfix: empty message, no header block, no final
# newline, bare CR, NUL bytes, over-long lines, mbox From line, SIZE limit,
# SMTPUTF8 addresses.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

servers_start || exit $?
POSTBOTE=${POSTBOTE:-$top_builddir/src/postbote}
work=$(mktemp -d "${TMPDIR:-/tmp}/postbote-rules.XXXXXX")
trap_add "rm -rf '$work'"
cat > "$work/conf" <<CONF
account rules
host localhost
port $SUBMISSION_PORT
tls_trust_file $CA_FILE
user $SMTP_USER
password $SMTP_PASSWORD
from $SMTP_USER
maildomain example.org
CONF
chmod 600 "$work/conf"

# send NAME [postbote args...] < message; leaves the delivered text
# (trace headers removed, CR removed) in $work/NAME.got
send() {
	local name=$1
	shift
	clear_mail
	if ! "$POSTBOTE" -C "$work/conf" "$@" 2> "$work/$name.err"; then
		not_ok "$name" "postbote failed: $(cat "$work/$name.err")"
		return 1
	fi
	if ! wait_for_mail 1; then
		not_ok "$name" "nothing delivered"
		return 1
	fi
	strip_trace_headers "$(mail_files | head -n1)" > "$work/$name.got"
}

# body_of FILE: the text after the first empty line
body_of() { sed '1,/^$/d' "$1"; }

printf '' | send "empty message" -i rcpt@example.net &&
	if grep -q '^From: ' "$work/empty message.got" && grep -q '^Date: ' "$work/empty message.got" &&
		[ -z "$(body_of "$work/empty message.got")" ]; then ok "empty message: sent with added headers only"
	else not_ok "empty message: sent with added headers only" "$(cat "$work/empty message.got")"; fi

printf 'just a line of text\nand another\n' | send "no header block" -i rcpt@example.net &&
	if [ "$(body_of "$work/no header block.got")" = "$(printf 'just a line of text\nand another')" ]; then
		ok "no header block: the text stays body, after added headers"
	else not_ok "no header block: the text stays body, after added headers" "$(cat "$work/no header block.got")"; fi

printf 'Subject: nl\n\nlast line without newline' | send "no final newline" -i rcpt@example.net &&
	if [ "$(body_of "$work/no final newline.got")" = "last line without newline" ]; then
		ok "no final newline: a line end is added, text intact"
	else not_ok "no final newline: a line end is added, text intact" "$(cat "$work/no final newline.got")"; fi

printf 'Subject: cr\n\none\rtwo\r\nthree\n' | send "bare CR" -i rcpt@example.net &&
	if [ "$(body_of "$work/bare CR.got")" = "$(printf 'one\ntwo\nthree')" ]; then
		ok "bare CR ends a line; no bare CR is sent"
	else not_ok "bare CR ends a line; no bare CR is sent" "$(od -c "$work/bare CR.got" | tail -n 5)"; fi

printf 'Subject: nul\n\nab\0cd\n' | send "NUL bytes" -i rcpt@example.net &&
	if [ "$(body_of "$work/NUL bytes.got")" = "abcd" ]; then ok "NUL bytes are removed"
	else not_ok "NUL bytes are removed" "$(od -c "$work/NUL bytes.got" | tail -n 3)"; fi

long=$(head -c 2500 /dev/zero | tr '\0' 'x')
printf 'Subject: %s\n\n%s\n' "word $long" "$long" | send "long lines" -i rcpt@example.net &&
	if [ "$(awk '{ if (length($0) > m) m = length($0) } END { print m }' "$work/long lines.got")" -le 998 ] &&
		[ "$(body_of "$work/long lines.got" | tr -d '\n')" = "$long" ] &&
		grep -q '^Subject: word$' "$work/long lines.got"; then
		ok "lines over 998 octets are split; body text kept, header folded"
	else not_ok "lines over 998 octets are split; body text kept, header folded" "$(head -c 300 "$work/long lines.got")"; fi

printf 'From someone@example.net Sun Nov 22 10:00:00 2026\nSubject: mbox\n\nbody\n' |
	send "mbox From line" -i rcpt@example.net &&
	if ! grep -q '^From someone' "$work/mbox From line.got" && grep -q '^Subject: mbox' "$work/mbox From line.got"; then
		ok "a leading mbox From line is dropped"
	else not_ok "a leading mbox From line is dropped" "$(head -n 5 "$work/mbox From line.got")"; fi

printf 'From: root\nTo: operator, Boss <boss>\nSubject: q\n\nbody\n' | send "qualified" -i -t &&
	if grep -q '^From: root@example.org$' "$work/qualified.got" &&
		grep -q '^To: operator@example.org, Boss <boss@example.org>$' "$work/qualified.got" &&
		grep -q '^Delivered-To: boss@example.org' $(mail_files); then
		ok "bare names are qualified in headers and envelope"
	else not_ok "bare names are qualified in headers and envelope" "$(head -n 6 "$work/qualified.got")"; fi

printf 'Subject: utf8 address\n\nhallo\n' | send "SMTPUTF8" -i 'jörg@example.net' &&
	if grep -q '^Delivered-To: jörg@example.net' $(mail_files); then
		ok "a non-ASCII recipient goes through with SMTPUTF8"
	else not_ok "a non-ASCII recipient goes through with SMTPUTF8" "$(head -n 4 $(mail_files))"; fi

clear_mail
head -c $((MESSAGE_SIZE_LIMIT + 1000)) /dev/zero | tr '\0' 'y' | fold -w 76 |
	sed '1i Subject: too big\n' > "$work/big.eml"
"$POSTBOTE" -C "$work/conf" -v -i rcpt@example.net < "$work/big.eml" > /dev/null 2> "$work/big.err"
rc=$?
if [ $rc -eq 65 ] && grep -q 'server accepts at most' "$work/big.err" &&
	! grep -q -- '--> MAIL FROM' "$work/big.err"; then
	ok "a message over the server's SIZE is refused before it is sent"
else
	not_ok "a message over the server's SIZE is refused before it is sent" "exit $rc: $(grep -v '^<--\|^-->' "$work/big.err" | tail -n 3)"
fi

finish
