#!/bin/bash
# End-to-end: authentication against the fault server, for what Dovecot
# cannot show: the SCRAM -PLUS variants with channel binding (tls-exporter
# on TLS 1.3, tls-unique on TLS 1.2, and a binding that does not match),
# XOAUTH2 and OAUTHBEARER with the server's JSON error, EXTERNAL with a
# TLS client certificate, postbote's choice of mechanism, and every
# password source (password_env, password_file, ~/.netrc, the terminal).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

POSTBOTE=${POSTBOTE:-$top_builddir/src/postbote}
FAULT=$top_srcdir/tests/servers/faultserver.py
work=$E2E_TMP
sh "$top_srcdir/tests/servers/certs.sh" "$work/certs" >/dev/null || exit 1
printf 'From: a@example.org\nTo: b@example.org\nSubject: auth test\n\nhello\n' > "$work/msg.eml"

server_pid=
# start_script JSON [faultserver args...]: the fault server with that
# script (STARTTLS, the test certificates).
start_script() {
	stop
	printf '%s\n' "$1" > "$work/script.json"
	shift
	rm -f "$work/port" "$work/record.jsonl"
	python3 "$FAULT" --port-file "$work/port" --script "$work/script.json" \
		--record "$work/record.jsonl" --cert "$work/certs/server.pem" \
		--key "$work/certs/server-key.pem" "$@" &
	server_pid=$!
	for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
	port=$(cat "$work/port")
}
# start MECHANISMS [faultserver args...]: a server offering "AUTH
# MECHANISMS" under TLS, user tester, password "s3cret pw", asking TLS
# clients for a certificate from the test CA.
start() {
	local mechs=$1
	shift
	start_script "{\"capabilities_tls\": [\"PIPELINING\", \"ENHANCEDSTATUSCODES\", \"AUTH $mechs\"]}" \
		--user tester --password 's3cret pw' --client-ca "$work/certs/ca.pem" "$@"
}
stop() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	server_pid=
}
trap_add stop

# conf [extra lines...]: the account, without any secret unless given.
conf() {
	{
		printf 'account default\nhost localhost\nport %s\n' "$port"
		printf 'tls_trust_file %s\nuser tester\nfrom a@example.org\n' "$work/certs/ca.pem"
		printf 'queue off\ntimeout 5\n'
		printf '%s\n' "$@"
	} > "$work/conf"
	chmod 600 "$work/conf"
}

send() { "$POSTBOTE" -C "$work/conf" -v b@example.org < "$work/msg.eml"; }
summary() { python3 "$FAULT" --summary "$work/record.jsonl"; }
auth_record() { grep '"event": "auth"' "$work/record.jsonl" | tail -n 1; }
delivered() { summary | grep -q ' message accepted'; }

# ---------------------------------------------------------------- SCRAM -PLUS

start "PLAIN SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-256-PLUS"
conf 'password s3cret pw'
assert_exit 0 "TLS 1.3: auth on picks SCRAM-SHA-256-PLUS" send 2> "$work/err"
assert_contains "tls-exporter binding checked by the server" \
	<(auth_record) '"mechanism": "SCRAM-SHA-256-PLUS", "authcid": "tester", "authzid": null, "credentials_ok": true, "channel_binding": "tls-exporter"'

start "PLAIN SCRAM-SHA-1-PLUS" --tls-max 1.2
conf 'password s3cret pw'
assert_exit 0 "TLS 1.2: SCRAM-SHA-1-PLUS" send 2> "$work/err"
assert_contains "tls-unique binding checked by the server" \
	<(auth_record) '"channel_binding": "tls-unique"'

start "SCRAM-SHA-256-PLUS" --cb-corrupt
conf 'password s3cret pw'
assert_exit 77 "a channel binding that does not match fails (exit 77)" send 2> "$work/err"
assert_contains "the server's refusal is shown" "$work/err" "SCRAM binding or nonce mismatch"
if delivered; then not_ok "nothing sent after a binding mismatch"; else ok "nothing sent after a binding mismatch"; fi

start "PLAIN SCRAM-SHA-256"
conf 'password s3cret pw'
assert_exit 0 "without -PLUS offered: SCRAM-SHA-256" send 2> "$work/err"
assert_contains <(auth_record) '"mechanism": "SCRAM-SHA-256"'

# ------------------------------------------- AUTH PLAIN with the first group

# line_of FILE TEXT: the number of the first line holding TEXT (0: none).
line_of() { grep -nF -- "$2" "$1" | head -n 1 | cut -d: -f1 | grep . || echo 0; }
before() { # NAME FILE FIRST SECOND: FIRST appears in FILE before SECOND
	local a b
	a=$(line_of "$2" "$3")
	b=$(line_of "$2" "$4")
	if [ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ "$a" -lt "$b" ]; then
		ok "$1"
	else
		not_ok "$1" "\"$3\" (line $a) should come before \"$4\" (line $b):
$(cat "$2")"
	fi
}

start "PLAIN"
conf 'password s3cret pw'
assert_exit 0 "AUTH PLAIN with PIPELINING" send 2> "$work/err"
before "AUTH PLAIN goes out with MAIL, RCPT and DATA (no wait for 235)" \
	"$work/err" "--> MAIL FROM" "<-- 235"
"$POSTBOTE" -C "$work/conf" -v -bv b@example.org 2> "$work/err" > /dev/null
before "-bv waits for 235 before MAIL" "$work/err" "<-- 235" "--> MAIL FROM"
start "SCRAM-SHA-256"
conf 'password s3cret pw'
assert_exit 0 "SCRAM (several steps) with PIPELINING" send 2> "$work/err"
before "SCRAM is never pipelined" "$work/err" "<-- 235" "--> MAIL FROM"

# A server that refuses the login but would take the mail anyway.
start_script '{"capabilities_tls": ["PIPELINING", "ENHANCEDSTATUSCODES", "AUTH PLAIN"], "auth": {"reply": "535 5.7.8 Authentication credentials invalid"}, "mail": {"reply": "250 2.1.0 ok"}, "rcpt": {"reply": "250 2.1.5 ok"}, "data": {"reply": "354 go ahead"}}'
conf 'password s3cret pw'
assert_exit 77 "a refused pipelined AUTH: exit 77" send 2> "$work/err"
assert_contains "the server's refusal is the report" "$work/err" \
	"AUTH PLAIN: server replied 535 5.7.8 Authentication credentials invalid"
assert_contains "a 354 after the refusal gets no message" "$work/err" \
	"the connection is closed without sending the message"
if summary | grep -q ' message accepted'; then
	not_ok "nothing delivered without the login" "$(summary)"
else
	ok "nothing delivered without the login"
fi

# A queued message is not dropped when the login is refused at a later
# flush: that is the account's problem, not the message's.
start_script '{"capabilities_tls": ["PIPELINING", "ENHANCEDSTATUSCODES", "AUTH PLAIN"], "mail": {"reply": "451 4.3.0 try later"}}' --user tester --password 's3cret pw'
conf 'password s3cret pw'
sed -i "s|^queue off|queue_dir $work/queue|" "$work/conf"
assert_exit 0 "a 451 queues the message" send 2> "$work/err"
start "PLAIN"
conf 'password wrong'
sed -i "s|^queue off|queue_dir $work/queue|" "$work/conf"
"$POSTBOTE" -C "$work/conf" -q 2> "$work/err"
assert_contains "a refused login at -q keeps the queued message" "$work/err" \
	"kept: AUTH PLAIN: server replied 535"
"$POSTBOTE" -C "$work/conf" -bp > "$work/bp" 2>&1
assert_contains "it is still in the queue, with the reason" "$work/bp" \
	"last error: AUTH PLAIN: server replied 535"
conf 'password s3cret pw'
sed -i "s|^queue off|queue_dir $work/queue|" "$work/conf"
assert_exit 0 "with the password fixed, -q delivers it" "$POSTBOTE" -C "$work/conf" -q
"$POSTBOTE" -C "$work/conf" -bp > "$work/bp" 2>&1
assert_contains "and the queue is empty" "$work/bp" "Mail queue is empty"
if delivered; then ok "the server got it"; else not_ok "the server got it" "$(summary)"; fi

# ------------------------------------------------------- XOAUTH2, OAUTHBEARER

# msmtp style: the password source prints the access token.
start "PLAIN XOAUTH2 OAUTHBEARER"
conf 'password s3cret pw'
assert_exit 0 "auth on never picks a token mechanism for a password" send 2> "$work/err"
assert_contains <(auth_record) '"mechanism": "PLAIN"'

for mech in XOAUTH2 OAUTHBEARER; do
	# the fault server takes its password as the only good token
	conf "auth $mech" "passwordeval echo s3cret"
	assert_exit 77 "$mech: a refused token exits 77" send 2> "$work/err"
	assert_contains "$mech: the server's decoded JSON error is shown" "$work/err" \
		"the server's OAuth2 error: {\"status\":"
	assert_not_contains "$mech: the token is not in the output" "$work/err" "s3cret"
done

start "XOAUTH2 OAUTHBEARER" --password tok-123.abc
for mech in XOAUTH2 OAUTHBEARER; do
	conf "auth $mech" 'passwordeval echo tok-123.abc'
	assert_exit 0 "$mech with a token from passwordeval" send 2> "$work/err"
	assert_contains "$mech: the server saw user tester" <(auth_record) \
		"\"mechanism\": \"$mech\", \"authcid\": \"tester\""
	assert_not_contains "$mech: the token is not in -v output" "$work/err" "tok-123"
	b64=$(printf 'user=tester\001auth=Bearer tok-123.abc\001\001' | base64 -w0)
	assert_not_contains "$mech: nor its base64" "$work/err" "${b64:0:20}"
done

start_script '{"capabilities_tls": ["AUTH XOAUTH2"], "auth": {"reply": "454 4.7.0 Temporary authentication failure"}}'
conf 'auth xoauth2' 'passwordeval echo tok'
assert_exit 75 "XOAUTH2: 454 is temporary (exit 75)" send 2> "$work/err"

start "XOAUTH2 OAUTHBEARER PLAIN" --tls none
conf 'tls off' 'auth xoauth2' 'passwordeval echo tok-123.abc'
assert_exit 77 "XOAUTH2 is never used without TLS" send 2> "$work/err"
assert_contains "the reason is given" "$work/err" "XOAUTH2 would expose the access token"
if summary | grep -q 'command AUTH'; then
	not_ok "no AUTH sent in clear text" "$(summary)"
else
	ok "no AUTH sent in clear text"
fi
conf 'tls off' 'password s3cret pw'
assert_exit 77 "PLAIN is never used without TLS" send 2> "$work/err"
assert_contains "without TLS only SCRAM is used" "$work/err" "only the SCRAM mechanisms are used"

# ------------------------------------------- OAuth2: postbote's own client

token_pid=
printf '{"refresh_tokens": ["rt-1"], "responses": {"token": [
  {"status": 200, "json": {"access_token": "tokA", "expires_in": 3600, "token_type": "Bearer"}},
  {"status": 200, "json": {"access_token": "tokB", "expires_in": 3600, "token_type": "Bearer"}},
  {"status": 400, "json": {"error": "invalid_grant", "error_description": "Token has been revoked."}},
  {"status": 503, "body": "maintenance"}]}}\n' > "$work/token-script.json"
python3 "$top_srcdir/tests/servers/tokenserver.py" --cert "$work/certs/server.pem" \
	--key "$work/certs/server-key.pem" --port-file "$work/token-port" \
	--script "$work/token-script.json" --record "$work/token-record.jsonl" {E2E_TAP_FD}>&- &
token_pid=$!
trap_add 'kill $token_pid 2>/dev/null'
for _ in $(seq 100); do [ -s "$work/token-port" ] && break; sleep 0.05; done
export XDG_STATE_HOME=$work/state
oauth_conf() {
	conf "oauth2_provider custom" \
		"oauth2_token_url https://127.0.0.1:$(cat "$work/token-port")/token" \
		"oauth2_client_id test-client" "oauth2_refresh_token rt-1" \
		"oauth2_trust_file $work/certs/ca.pem"
}
token_requests() { grep -c '"path": "/token"' "$work/token-record.jsonl"; }

start "PLAIN XOAUTH2 OAUTHBEARER" --password tokA
oauth_conf
assert_exit 0 "OAuth2 account: a token from the token endpoint, OAUTHBEARER" send 2> "$work/err"
assert_contains <(auth_record) '"mechanism": "OAUTHBEARER", "authcid": "tester", "authzid": null, "credentials_ok": true'
assert_exit 0 "the second send uses the cached token" send 2> "$work/err"
assert_eq "one request to the token endpoint for two sends" 1 "$(token_requests)"
assert_not_contains "the token is not in -v output" "$work/err" "tokA"

start "XOAUTH2" --password tokB
oauth_conf
assert_exit 0 "a cached token the server refuses is replaced once" send 2> "$work/err"
assert_contains "and -v says so" "$work/err" "the server refused the cached access token; fetching a new one"
assert_eq "two AUTH exchanges, the second with the new token" \
	"false true" "$(grep '"event": "auth"' "$work/record.jsonl" | sed 's/.*"success": \([a-z]*\).*/\1/' | tr '\n' ' ' | sed 's/ $//')"
assert_eq "a second request to the token endpoint" 2 "$(token_requests)"

start "XOAUTH2" --password tokC
oauth_conf
assert_exit 77 "a refused refresh token: exit 77" send 2> "$work/err"
assert_contains "with the provider's words" "$work/err" "Token has been revoked."
rm -rf "$work/state"
assert_exit 75 "a token endpoint answering 503: temporary (exit 75)" send 2> "$work/err"
assert_contains "and says why" "$work/err" "503"
kill "$token_pid" 2>/dev/null
wait "$token_pid" 2>/dev/null
rm -rf "$work/state"
start "XOAUTH2" --password tokC
oauth_conf
assert_exit 75 "an unreachable token endpoint: temporary (exit 75)" send 2> "$work/err"
assert_contains "the report names the token endpoint" "$work/err" "127.0.0.1:$(cat "$work/token-port")"
if summary | grep -q 'command AUTH'; then
	not_ok "no AUTH without a token" "$(summary)"
else
	ok "no AUTH without a token"
fi
unset XDG_STATE_HOME

# ------------------------------------------------------------------ EXTERNAL

start "PLAIN EXTERNAL"
conf "tls_cert_file $work/certs/client.pem" "tls_key_file $work/certs/client-key.pem"
assert_exit 0 "auth on with a client certificate and no password: EXTERNAL" send 2> "$work/err"
assert_contains "the server saw the certificate's name" <(auth_record) \
	'"mechanism": "EXTERNAL", "authcid": "tester@example.org"'
conf 'auth external'
assert_exit 77 "EXTERNAL without a client certificate is refused by the server" send 2> "$work/err"

start "EXTERNAL"
conf 'password s3cret pw'
assert_exit 77 "only EXTERNAL offered, no certificate configured" send 2> "$work/err"
assert_contains "the missing credential is named" "$work/err" \
	"EXTERNAL needs a TLS client certificate (tls_cert_file), which is not configured"

# ------------------------------------------------------------------- TLS

start "PLAIN"
conf 'password s3cret pw' 'tls_certcheck off'
sed -i '/^tls_trust_file/d' "$work/conf"
assert_exit 0 "tls_certcheck off still sends" send 2> "$work/err"
assert_contains "with a loud warning" "$work/err" \
	"postbote: WARNING: account default has tls_certcheck off: the server's certificate is not checked"
"$POSTBOTE" -C "$work/conf" b@example.org < "$work/msg.eml" 2> "$work/err"
assert_contains "the warning is given without -v too" "$work/err" "WARNING"

# ------------------------------------------------------------ password sources

start "PLAIN SCRAM-SHA-256"
conf 'password_env PB_TEST_PASSWORD'
PB_TEST_PASSWORD='s3cret pw' assert_exit 0 "password_env" send 2> "$work/err"
assert_exit 77 "password_env unset" send 2> "$work/err"
assert_contains "the variable is named" "$work/err" \
	"password_env: the environment variable PB_TEST_PASSWORD is not set"

printf 's3cret pw\nsecond line ignored\n' > "$work/pwfile"
chmod 600 "$work/pwfile"
conf "password_file $work/pwfile"
assert_exit 0 "password_file (first line)" send 2> "$work/err"
chmod 644 "$work/pwfile"
assert_exit 77 "a password_file readable by others is refused" send 2> "$work/err"
assert_contains "with the fix" "$work/err" "run: chmod 600 $work/pwfile"

mkdir -p "$work/home"
printf 'machine other.example login tester password wrong\nmacdef init\ncd /\n\nmachine localhost\n  login tester\n  password "s3cret pw"\n' \
	> "$work/home/.netrc"
chmod 600 "$work/home/.netrc"
conf
HOME=$work/home assert_exit 0 "~/.netrc (machine and login match, quoted password)" send 2> "$work/err"
sed -i 's/login tester$/login someone-else/' "$work/home/.netrc"
HOME=$work/home assert_exit 77 "~/.netrc entry for another login is not used" send 2> "$work/err"
assert_contains "and no password is reported" "$work/err" "SCRAM-SHA-256 needs a password (password, passwordeval"
printf 'default login tester password "s3cret pw"\n' > "$work/home/.netrc"
chmod 644 "$work/home/.netrc"
HOME=$work/home assert_exit 77 "a ~/.netrc readable by others is refused" send 2> "$work/err"
assert_contains "with the fix" "$work/err" "chmod 600 $work/home/.netrc"
chmod 600 "$work/home/.netrc"
HOME=$work/home assert_exit 0 "~/.netrc default entry" send 2> "$work/err"

if command -v dbus-run-session >/dev/null && command -v gnome-keyring-daemon >/dev/null &&
	command -v secret-tool >/dev/null; then
	conf
	mkdir -p "$work/kr-home"
	HOME=$work/kr-home dbus-run-session -- sh -c '
		printf unlock | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
		printf "s3cret pw" | secret-tool store --label=postbote host localhost service smtp user tester
		"$0" -C "$1" b@example.org < "$2"' "$POSTBOTE" "$work/conf" "$work/msg.eml" \
		> "$work/kr.out" 2>&1
	if delivered; then
		ok "the keyring through secret-tool (msmtp's attributes)"
	else
		not_ok "the keyring through secret-tool (msmtp's attributes)" "$(cat "$work/kr.out")"
	fi
else
	skip "the keyring through secret-tool" "gnome-keyring, secret-tool or dbus-run-session missing"
fi

conf 'passwordeval exit 3'
assert_exit 77 "a failing passwordeval" send 2> "$work/err"
assert_contains "is reported with its status" "$work/err" 'passwordeval: the command "exit 3" failed (exit status 3)'

if command -v script >/dev/null; then
	conf
	(sleep 1; printf 's3cret pw\n') | HOME=$work/home-empty script -qec \
		"'$POSTBOTE' -C '$work/conf' b@example.org < '$work/msg.eml'" /dev/null \
		> "$work/tty.out" 2>&1
	assert_contains "a terminal prompt when nothing is configured" "$work/tty.out" \
		"postbote: password for tester at localhost:"
	if delivered; then
		ok "and the message is sent with it"
	else
		not_ok "and the message is sent with it" "$(cat "$work/tty.out")"
	fi
	assert_not_contains "the typed password is not echoed" "$work/tty.out" "s3cret"
else
	skip "terminal prompt" "script(1) not installed"
fi
conf
HOME=$work/home-empty assert_exit 77 "no terminal, no source: a clear error" \
	setsid -w "$POSTBOTE" -C "$work/conf" b@example.org < "$work/msg.eml" 2> "$work/err"
assert_contains "naming the sources" "$work/err" \
	"needs a password (password, passwordeval, password_env, password_file, ~/.netrc or secret-tool, or a terminal to ask on), which is not configured"

finish
